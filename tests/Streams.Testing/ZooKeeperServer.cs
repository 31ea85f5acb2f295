using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Streams.Testing;

/// <summary>
/// A real ZooKeeper server (Debian's zookeeper package) on a free loopback port with its own data directory,
/// started as `java -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain cfg`.
/// It can be stopped and started again on the same port and data. If it cannot start, tests fail saying why.
/// </summary>
public sealed class ZooKeeperServer : IAsyncDisposable
{
    public const string Jar = "/usr/share/java/zookeeper.jar";

    private readonly TempDirectory _dir = new("zookeeper");
    private ExternalProcess? _process;

    private ZooKeeperServer(int port)
    {
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<ZooKeeperServer> StartAsync()
    {
        if (!File.Exists(Jar))
        {
            throw new InvalidOperationException($"ZooKeeper is not installed ({Jar} is missing): run `apt-get install zookeeper` (the README's test command does).");
        }

        var server = new ZooKeeperServer(Ports.Free());
        await File.WriteAllTextAsync(Path.Combine(server._dir.Path, "zoo.cfg"), string.Join('\n',
            "tickTime=200",
            $"dataDir={server._dir.Sub("data")}",
            $"clientPort={server.Port}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "minSessionTimeout=400",
            "maxSessionTimeout=60000",
            "4lw.commands.whitelist=srvr",
            string.Empty));
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>Stops the server (SIGKILL: no clean shutdown), keeping its data.</summary>
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
        _dir.Dispose();
    }

    private async Task StartProcessAsync()
    {
        var info = new ProcessStartInfo("java") { WorkingDirectory = _dir.Path };
        foreach (var arg in new[] { "-Xmx256m", "-cp", Jar, "org.apache.zookeeper.server.ZooKeeperServerMain", Path.Combine(_dir.Path, "zoo.cfg") })
        {
            info.ArgumentList.Add(arg);
        }

        _process = await ExternalProcess.StartAsync($"ZooKeeper on port {Port.ToString(CultureInfo.InvariantCulture)}", info, RespondsAsync, TimeSpan.FromSeconds(60));
    }

    /// <summary>The "srvr" four-letter command answers once the server serves clients.</summary>
    private async Task<bool> RespondsAsync()
    {
        try
        {
            using var tcp = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await tcp.ConnectAsync("127.0.0.1", Port, timeout.Token);
            var stream = tcp.GetStream();
            await stream.WriteAsync("srvr"u8.ToArray(), timeout.Token);
            var buffer = new byte[256];
            var read = await stream.ReadAsync(buffer, timeout.Token);
            return Encoding.ASCII.GetString(buffer, 0, read).Contains("Zookeeper version", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }
}
