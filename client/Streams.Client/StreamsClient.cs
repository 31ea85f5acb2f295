using Streams.Client.Internal;
using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Client;

/// <summary>
/// The entry point of the SDK: one per application, thread-safe, holding the controller channel and the
/// connections to segment stores that its writers and readers share. Dispose it last.
/// </summary>
/// <example>
/// <code>
/// await using var client = StreamsClient.Create("http://127.0.0.1:9090");
/// await client.Streams.CreateScopeAsync("shop");
/// await client.Streams.CreateStreamAsync("shop", "orders", StreamConfig.Fixed(4));
/// await using var writer = await client.CreateWriterAsync("shop", "orders", Serializers.Utf8);
/// await writer.WriteEventAsync("customer-42", "order placed");
/// </code>
/// </example>
public sealed class StreamsClient : IAsyncDisposable
{
    /// <summary>
    /// The name of the SDK's <see cref="System.Diagnostics.ActivitySource"/>: add it to your tracer (OpenTelemetry:
    /// <c>AddSource(StreamsClient.ActivitySourceName)</c>) to trace the SDK's controller calls and carry the trace into the
    /// server's spans. The data path (the raw carrier) carries no trace context.
    /// </summary>
    public const string ActivitySourceName = "Streams.Client";

    private readonly StreamsClientOptions _options;
    private readonly ControllerClient _controller;
    private readonly ConnectionPool _pool;

    private StreamsClient(StreamsClientOptions options)
    {
        _options = options;
        var keepAlive = new KeepAliveSettings(options.KeepAliveInterval, options.KeepAliveTimeout);
        _controller = new ControllerClient(options.ControllerUri, options.ControlTimeout, keepAlive);
        _pool = new ConnectionPool(options.Transport, keepAlive);
        Streams = new StreamManager(_controller);
    }

    /// <summary>Scope and stream management.</summary>
    public StreamManager Streams { get; }

    /// <summary>Creates a client for the controller at <paramref name="controllerUri"/> (several: comma-separated).</summary>
    public static StreamsClient Create(string controllerUri = StreamsClientOptions.DefaultControllerUri) =>
        Create(new StreamsClientOptions { ControllerUri = controllerUri });

    /// <summary>Creates a client with explicit options.</summary>
    public static StreamsClient Create(StreamsClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _ = ControllerClient.ParseUris(options.ControllerUri, nameof(options));

        if (options.KeepAliveInterval <= TimeSpan.Zero || options.KeepAliveTimeout <= options.KeepAliveInterval)
        {
            throw new ArgumentException(
                $"KeepAliveInterval ({options.KeepAliveInterval}) must be positive and below KeepAliveTimeout ({options.KeepAliveTimeout}).", nameof(options));
        }

        return new StreamsClient(options);
    }

    /// <summary>Creates a writer for a stream. Fails with <see cref="StreamsException"/> (NotFound) if the stream does not exist.</summary>
    public Task<EventStreamWriter<T>> CreateWriterAsync<T>(string scope, string stream, IEventSerializer<T> serializer, EventWriterOptions? options = null, CancellationToken cancellationToken = default) =>
        EventStreamWriter<T>.CreateAsync(scope, stream, serializer, options ?? new EventWriterOptions(), _controller, _pool, _options.ReconnectTimeout, cancellationToken);

    /// <summary>Creates a reader of a whole stream.</summary>
    public EventStreamReader<T> CreateReader<T>(string scope, string stream, IEventSerializer<T> serializer, EventReaderOptions? options = null) =>
        new(scope, stream, serializer, options ?? new EventReaderOptions(), _controller, _pool, _options.ReconnectTimeout);

    /// <summary>Closes the connections. Dispose writers first, so their buffered events are flushed.</summary>
    public async ValueTask DisposeAsync()
    {
        await _pool.DisposeAsync();
        _controller.Dispose();
    }
}
