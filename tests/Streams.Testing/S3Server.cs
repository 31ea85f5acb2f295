using System.Diagnostics;
using System.Globalization;

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
    private ExternalProcess? _process;

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
        var info = new ProcessStartInfo("node") { WorkingDirectory = _dir.Path };
        foreach (var arg in new[] { Script, "-d", _dir.Sub("data"), "-a", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "--silent" })
        {
            info.ArgumentList.Add(arg);
        }

        Directory.CreateDirectory(_dir.Sub("data"));
        _process = await ExternalProcess.StartAsync($"s3rver on port {Port.ToString(CultureInfo.InvariantCulture)}", info, () => ExternalProcess.AcceptsAsync(Port), TimeSpan.FromSeconds(30));
    }
}
