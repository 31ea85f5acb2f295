using System.Globalization;
using Microsoft.Extensions.Logging;
using Streams.Hosting;
using Streams.Client;

namespace Streams.Testing;

/// <summary>A standalone server in the test process, on free loopback ports and its own data directory.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly TempDirectory? _ownedDirectory;
    private readonly Dictionary<string, string?> _settings;
    private readonly ILoggerFactory _loggerFactory;
    private StandaloneHost? _host;

    private TestServer(string dataDirectory, TempDirectory? owned, Dictionary<string, string?> settings)
    {
        DataDirectory = dataDirectory;
        _ownedDirectory = owned;
        _settings = settings;
        _loggerFactory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning));
    }

    public string DataDirectory { get; }

    public int GrpcPort => int.Parse(_settings["Server:GrpcPort"]!, CultureInfo.InvariantCulture);

    public int DataPort => int.Parse(_settings["Server:DataPort"]!, CultureInfo.InvariantCulture);

    public int MetricsPort => int.Parse(_settings["Server:MetricsPort"]!, CultureInfo.InvariantCulture);

    public string ControllerUri => $"http://127.0.0.1:{GrpcPort}";

    /// <summary>Starts a server; <paramref name="settings"/> override configuration keys (e.g. "SegmentStore:CacheSize").</summary>
    public static async Task<TestServer> StartAsync(string? dataDirectory = null, IReadOnlyDictionary<string, string?>? settings = null)
    {
        var owned = dataDirectory is null ? new TempDirectory("streams-server") : null;
        var all = new Dictionary<string, string?>
        {
            ["DataDirectory"] = dataDirectory ?? owned!.Path,
            ["Server:GrpcPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["Server:DataPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["Server:MetricsPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["SegmentStore:CacheSize"] = "64MiB",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            all[key] = value;
        }

        var server = new TestServer(all["DataDirectory"]!, owned, all);
        await server.StartHostAsync();
        return server;
    }

    public StreamsClient CreateClient(DataTransport transport = DataTransport.Raw) =>
        StreamsClient.Create(new StreamsClientOptions { ControllerUri = ControllerUri, Transport = transport, ReconnectTimeout = TimeSpan.FromSeconds(20) });

    /// <summary>Stops the server cleanly and starts it again on the same directory and ports.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartHostAsync();
    }

    public async Task StopAsync()
    {
        if (_host is { } host)
        {
            _host = null;
            await host.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _loggerFactory.Dispose();
        _ownedDirectory?.Dispose();
    }

    private async Task StartHostAsync()
    {
        var configuration = ServerConfiguration.Build(null, _settings);
        _host = await StandaloneHost.StartAsync(configuration, _loggerFactory, CancellationToken.None);
    }
}
