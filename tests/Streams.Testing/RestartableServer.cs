using System.Diagnostics;
using System.Globalization;

namespace Streams.Testing;

/// <summary>
/// A third-party server on a free loopback port with its own directory, which a test can stop (SIGKILL, data kept)
/// and start again on the same port and data. Subclasses say how to launch it and how to tell it is ready.
/// </summary>
public abstract class RestartableServer : IAsyncDisposable
{
    private ExternalProcess? _process;

    protected RestartableServer(string name, int port)
    {
        Name = name;
        Port = port;
        Directory = new TempDirectory(name);
    }

    public int Port { get; }

    protected string Name { get; }

    /// <summary>The server's own directory (configuration, data).</summary>
    protected TempDirectory Directory { get; }

    /// <summary>Stops the server with SIGKILL (no clean shutdown), keeping its data.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _process, null) is { } process)
        {
            await process.StopAsync();
        }
    }

    /// <summary>Starts the server again on the same port and data.</summary>
    public Task RestartAsync() => StartProcessAsync();

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Directory.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>The command that runs the server.</summary>
    protected abstract ProcessStartInfo Command();

    /// <summary>True once the server serves clients.</summary>
    protected virtual Task<bool> ReadyAsync() => ExternalProcess.AcceptsAsync(Port);

    protected virtual TimeSpan StartTimeout => TimeSpan.FromSeconds(30);

    protected async Task StartProcessAsync()
    {
        var info = Command();
        info.WorkingDirectory = Directory.Path;
        _process = await ExternalProcess.StartAsync($"{Name} on port {Port.ToString(CultureInfo.InvariantCulture)}", info, ReadyAsync, StartTimeout);
    }
}
