using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Streams.Testing;

/// <summary>
/// A real S3-protocol server: s3rver (npm, installed in tests/interop by the test command) on a free loopback port
/// with its own data directory and one bucket. It can be stopped (SIGKILL) and started again on the same port and
/// data, to test Tier 2 outages. If it cannot start, tests fail saying why.
/// </summary>
public sealed class S3Server : IAsyncDisposable
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly TempDirectory _dir = new("s3rver");
    private readonly StringBuilder _output = new();
    private Process? _process;

    private S3Server(int port, string bucket)
    {
        Port = port;
        Bucket = bucket;
    }

    public int Port { get; }

    public string Bucket { get; }

    public string Endpoint => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The Tier 2 URI of a prefix in the bucket (credentials go in the environment: <see cref="Environment"/>).</summary>
    public string Tier2Uri(string prefix) => $"s3://{Bucket}/{prefix}?endpoint={Endpoint}";

    /// <summary>AWS credential variables for processes that use this server.</summary>
    public static IReadOnlyDictionary<string, string> Environment { get; } = new Dictionary<string, string>
    {
        ["AWS_ACCESS_KEY_ID"] = AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = SecretKey,
    };

    public static string Script => Path.Combine(Node.InteropDirectory, "node_modules", "s3rver", "bin", "s3rver.js");

    public static async Task<S3Server> StartAsync(string bucket = "streams")
    {
        if (!File.Exists(Script))
        {
            throw new InvalidOperationException($"s3rver is not installed ({Script} is missing): run `npm ci --prefix {Node.InteropDirectory}` (the README's test command does).");
        }

        var server = new S3Server(Ports.Free(), bucket);
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>Stops the server with SIGKILL, keeping its data.</summary>
    public async Task StopAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
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
        var info = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _dir.Path,
        };
        foreach (var arg in new[] { Script, "-d", _dir.Sub("data"), "-a", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "--silent" })
        {
            info.ArgumentList.Add(arg);
        }

        Directory.CreateDirectory(_dir.Sub("data"));
        var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start node for s3rver (is Node.js installed?).");
        process.OutputDataReceived += (_, e) => { lock (_output) { _output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (_output) { _output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            if (await AcceptsAsync())
            {
                return;
            }

            await Task.Delay(100);
        }

        string log;
        lock (_output)
        {
            log = _output.ToString();
        }

        await StopAsync();
        throw new InvalidOperationException($"s3rver did not start on port {Port.ToString(CultureInfo.InvariantCulture)}:\n{log}");
    }

    private async Task<bool> AcceptsAsync()
    {
        try
        {
            using var tcp = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await tcp.ConnectAsync("127.0.0.1", Port, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
