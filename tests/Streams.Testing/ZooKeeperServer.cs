using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Streams.Testing;

/// <summary>
/// A real ZooKeeper server (Debian's zookeeper package) on a free loopback port with its own data directory,
/// started as `java -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain cfg`.
/// It can be stopped and started again on the same port and data. If it cannot start, tests fail saying why.
/// </summary>
public sealed class ZooKeeperServer : RestartableServer
{
    public const string Jar = "/usr/share/java/zookeeper.jar";

    private ZooKeeperServer(int port)
        : base("zookeeper", port)
    {
    }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<ZooKeeperServer> StartAsync()
    {
        if (!File.Exists(Jar))
        {
            throw new InvalidOperationException($"ZooKeeper is not installed ({Jar} is missing): run `apt-get install zookeeper` (the README's test command does).");
        }

        var server = new ZooKeeperServer(Ports.Free());
        await File.WriteAllTextAsync(Path.Combine(server.Directory.Path, "zoo.cfg"), string.Join('\n',
            "tickTime=200",
            $"dataDir={server.Directory.Sub("data")}",
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

    protected override TimeSpan StartTimeout => TimeSpan.FromSeconds(60);

    protected override ProcessStartInfo Command()
    {
        var info = new ProcessStartInfo("java");
        foreach (var arg in new[] { "-Xmx256m", "-cp", Jar, "org.apache.zookeeper.server.ZooKeeperServerMain", Path.Combine(Directory.Path, "zoo.cfg") })
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }

    /// <summary>The "srvr" four-letter command answers once the server serves clients.</summary>
    protected override async Task<bool> ReadyAsync()
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
