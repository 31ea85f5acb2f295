using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Streams.Testing;

/// <summary>
/// A third-party server a test runs (ZooKeeper, s3rver): started with its output captured, ready once a probe answers,
/// stopped with SIGKILL. If it does not become ready, the start fails with the server's output.
/// </summary>
internal sealed class ExternalProcess
{
    private readonly Process _process;
    private readonly StringBuilder _output;

    private ExternalProcess(Process process, StringBuilder output)
    {
        _process = process;
        _output = output;
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <paramref name="info"/> and waits (at most <paramref name="timeout"/>) until <paramref name="ready"/> is true.</summary>
    public static async Task<ExternalProcess> StartAsync(string name, ProcessStartInfo info, Func<Task<bool>> ready, TimeSpan timeout)
    {
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        var output = new StringBuilder();
        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {info.FileName} for {name}.");
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var started = new ExternalProcess(process, output);

        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            if (await ready())
            {
                return started;
            }

            await Task.Delay(100);
        }

        await started.StopAsync();
        throw new InvalidOperationException($"{name} did not start:\n{started.Output}");
    }

    /// <summary>True once something accepts TCP connections on the loopback port.</summary>
    public static async Task<bool> AcceptsAsync(int port)
    {
        try
        {
            using var tcp = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await tcp.ConnectAsync("127.0.0.1", port, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Kills the process (SIGKILL: no clean shutdown) and waits for it.</summary>
    public async Task StopAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
