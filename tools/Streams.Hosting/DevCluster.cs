using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace Streams.Hosting;

/// <summary>
/// Runs a local cluster as child processes: ZooKeeper (Debian's zookeeper package), bookies, a controller and segment
/// stores, all on loopback, their output prefixed with their name. Disposing stops every child (SIGTERM, then SIGKILL).
/// </summary>
public sealed class DevCluster(string dataDirectory, int sessionTimeoutMs) : IAsyncDisposable
{
    private const string ZooKeeperJar = "/usr/share/java/zookeeper.jar";

    private readonly List<(string Name, Process Process)> _children = [];
    private volatile bool _stopping;

    public string ZooKeeper { get; private set; } = string.Empty;

    public async Task StartAsync(int bookies, int stores, int controllerPort, int controllerMetricsPort, int containers, (int E, int Qw, int Qa) quorums, string? tier2, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dataDirectory);
        tier2 ??= "file://" + Path.Combine(Path.GetFullPath(dataDirectory), "tier2");
        var zkPort = FreePort();
        ZooKeeper = $"127.0.0.1:{zkPort}";
        await StartZooKeeperAsync(zkPort, cancellationToken);
        var common = new[] { "--zookeeper", ZooKeeper, "--session-timeout-ms", sessionTimeoutMs.ToString(CultureInfo.InvariantCulture) };

        var ready = new List<Task>();
        for (var i = 0; i < bookies; i++)
        {
            ready.Add(StartRoleAsync($"bookie-{i}", "is ready", ["bookie", .. common, "--data-dir", Path.Combine(dataDirectory, $"bookie-{i}"), .. Ports()], cancellationToken));
        }

        ready.Add(StartRoleAsync("controller", "is ready", ["controller", .. common, "--port", Port(controllerPort), "--metrics-port", Port(controllerMetricsPort), "--containers", Port(containers)], cancellationToken));
        await Task.WhenAll(ready);
        var storesReady = Enumerable.Range(0, stores).Select(i => StartRoleAsync($"segmentstore-{i}", "is ready",
            ["segmentstore", .. common, .. Ports(), "--ensemble", Port(quorums.E), "--write-quorum", Port(quorums.Qw), "--ack-quorum", Port(quorums.Qa), "--tier2", tier2], cancellationToken));
        await Task.WhenAll(storesReady);
    }

    /// <summary>Runs until cancelled (Ctrl-C, SIGTERM). A child that dies meanwhile is reported; the rest keeps running.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;

        // Segment stores and the controller first (they close ledgers cleanly), then the bookies, ZooKeeper last;
        // each tier in parallel, each member given 15 s before SIGKILL.
        var tiers = _children.GroupBy(c => c.Name switch
        {
            "zookeeper" => 2,
            _ when c.Name.StartsWith("bookie", StringComparison.Ordinal) => 1,
            _ => 0,
        }).OrderBy(g => g.Key);
        foreach (var tier in tiers)
        {
            await Task.WhenAll(tier.Select(c => StopAsync(c.Name, c.Process)));
        }
    }

    private static async Task StopAsync(string name, Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
                {
                    _ = Kill(process.Id, 15);
                }
                else
                {
                    process.Kill(entireProcessTree: true);
                }

                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                await process.WaitForExitAsync(timeout.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"[dev-cluster] {name} did not stop in time; killing it.");
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            process.Dispose();
        }
    }

    private async Task StartZooKeeperAsync(int port, CancellationToken cancellationToken)
    {
        if (!File.Exists(ZooKeeperJar))
        {
            throw new InvalidOperationException($"ZooKeeper is not installed ({ZooKeeperJar} is missing): run `apt-get install zookeeper`.");
        }

        var zkDir = Path.Combine(dataDirectory, "zookeeper");
        Directory.CreateDirectory(zkDir);
        var config = Path.Combine(zkDir, "zoo.cfg");
        await File.WriteAllTextAsync(config, $"tickTime=500\ndataDir={Path.Combine(zkDir, "data")}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\nminSessionTimeout=1000\n4lw.commands.whitelist=srvr\n", cancellationToken);
        var process = Spawn("zookeeper", "java", ["-Xmx256m", "-cp", ZooKeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain", config], null);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await RespondsAsync(port))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("ZooKeeper did not start; see its output above.");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private Task StartRoleAsync(string name, string readyMarker, string[] args, CancellationToken cancellationToken)
    {
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entry = Assembly.GetEntryAssembly()!.Location;
        var host = Environment.ProcessPath!;
        var viaDotnet = Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        var process = Spawn(name, host, viaDotnet ? [entry, .. args] : args, line =>
        {
            if (line.Contains(readyMarker, StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        });
        _ = process.WaitForExitAsync(cancellationToken).ContinueWith(_ => ready.TrySetException(new InvalidOperationException($"{name} exited before it was ready; see its output above.")), TaskScheduler.Default);
        return ready.Task.WaitAsync(TimeSpan.FromMinutes(2), cancellationToken);
    }

    private Process Spawn(string name, string fileName, string[] args, Action<string>? onLine)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {name}.");
        void Forward(string? line)
        {
            if (line is null)
            {
                return;
            }

            Console.WriteLine($"[{name}] {line}");
            onLine?.Invoke(line);
        }

        process.OutputDataReceived += (_, e) => Forward(e.Data);
        process.ErrorDataReceived += (_, e) => Forward(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) =>
        {
            if (!_stopping)
            {
                Console.Error.WriteLine($"[dev-cluster] {name} exited (code {process.ExitCode}); the rest keeps running. Ctrl-C stops everything.");
            }
        };
        _children.Add((name, process));
        return process;
    }

    private static string[] Ports() => ["--port", Port(FreePort()), "--data-port", Port(FreePort()), "--metrics-port", Port(FreePort())];

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A port free now and not handed out before: the kernel may offer a just-released ephemeral port again, and two
    /// children told the same port would race for it (one of them fails to start).
    /// </summary>
    private static int FreePort()
    {
        for (var attempt = 0; ; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            lock (HandedOut)
            {
                if (HandedOut.Add(port) || attempt >= 100)
                {
                    return port;
                }
            }
        }
    }

    private static readonly HashSet<int> HandedOut = [];

    private static async Task<bool> RespondsAsync(int port)
    {
        try
        {
            using var tcp = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await tcp.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            await tcp.GetStream().WriteAsync("srvr"u8.ToArray(), timeout.Token);
            var buffer = new byte[128];
            var read = await tcp.GetStream().ReadAsync(buffer, timeout.Token);
            return Encoding.ASCII.GetString(buffer, 0, read).Contains("Zookeeper", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
