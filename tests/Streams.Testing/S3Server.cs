using System.Diagnostics;
using System.Globalization;

namespace Streams.Testing;

/// <summary>
/// A real S3-protocol server: s3rver (npm, installed in tests/interop by the test command) on a free loopback port
/// with its own data directory and one bucket. It can be stopped (SIGKILL) and started again on the same port and
/// data, to test Tier 2 outages. If it cannot start, tests fail saying why.
/// </summary>
public sealed class S3Server : RestartableServer
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private S3Server(int port, string bucket)
        : base("s3rver", port)
    {
        Bucket = bucket;
    }

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

    protected override ProcessStartInfo Command()
    {
        System.IO.Directory.CreateDirectory(Directory.Sub("data"));
        var info = new ProcessStartInfo("node");
        foreach (var arg in new[] { Script, "-d", Directory.Sub("data"), "-a", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "--silent" })
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }
}
