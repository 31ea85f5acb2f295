using Streams.Client.Batch;
using Streams.Client.Internal;
using Streams.Client.ReaderGroups;
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

    /// <summary>How long a checkpoint waits for the readers when the caller names no timeout (the wire's "0 means 30000").</summary>
    private static readonly TimeSpan DefaultCheckpointTimeout = TimeSpan.FromSeconds(30);

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
        Batch = new BatchClient(_controller, _pool, options.ReconnectTimeout);
    }

    /// <summary>Scope and stream management.</summary>
    public StreamManager Streams { get; }

    /// <summary>Batch reads: a stream between two cuts as segment ranges, read in parallel (exports, backfills).</summary>
    public BatchClient Batch { get; }

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

    /// <summary>
    /// Creates a reader group in an existing scope; returns false if it already existed (its configuration is then
    /// unchanged). Fails with <see cref="StreamsException"/> (NotFound) if a stream does not exist, and with
    /// <see cref="ArgumentException"/> if the configuration is not valid.
    /// </summary>
    public async Task<bool> CreateReaderGroupAsync(string scope, string group, ReaderGroupConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var request = new Contracts.Controller.CreateReaderGroupRequest { Scope = scope, Group = group, Config = config.ToContract() };
        return (await _controller.CallGroupsAsync((c, o) => c.CreateReaderGroupAsync(request, o), cancellationToken)).Created;
    }

    /// <summary>A reader group's configuration, readers, segments and backlog. Fails with <see cref="StreamsException"/> (NotFound) if it does not exist.</summary>
    public async Task<ReaderGroupDescription> DescribeReaderGroupAsync(string scope, string group, CancellationToken cancellationToken = default) =>
        ReaderGroupDescription.From(await _controller.CallGroupsAsync((c, o) => c.DescribeReaderGroupAsync(new Contracts.Controller.ReaderGroupRef { Scope = scope, Group = group }, o), cancellationToken));

    /// <summary>Deletes a reader group; returns false if it did not exist. Its readers are fenced.</summary>
    public async Task<bool> DeleteReaderGroupAsync(string scope, string group, CancellationToken cancellationToken = default) =>
        (await _controller.CallGroupsAsync((c, o) => c.DeleteReaderGroupAsync(new Contracts.Controller.ReaderGroupRef { Scope = scope, Group = group }, o), cancellationToken)).Deleted;

    /// <summary>The names of the scope's reader groups, sorted.</summary>
    public async Task<IReadOnlyList<string>> ListReaderGroupsAsync(string scope, CancellationToken cancellationToken = default) =>
        [.. (await _controller.CallGroupsAsync((c, o) => c.ListReaderGroupsAsync(new Contracts.Controller.ScopeRequest { Scope = scope }, o), cancellationToken)).Groups];

    /// <summary>
    /// Declares a reader gone (e.g. its process died): its segments go to other readers at once, from its last commits,
    /// instead of after its session timeout. Returns false if no such reader was in the group.
    /// </summary>
    public async Task<bool> ReaderOfflineAsync(string scope, string group, string readerId, CancellationToken cancellationToken = default) =>
        (await _controller.CallGroupsAsync((c, o) => c.ReaderOfflineAsync(new Contracts.Controller.ReaderOfflineRequest { Scope = scope, Group = group, ReaderId = readerId }, o), cancellationToken)).Removed;

    /// <summary>
    /// Takes a checkpoint of a reader group: asks each of its readers for its committed positions (what its application
    /// processed) and returns once all answered or left, with one cut per stream that covers also the segments no reader
    /// held. A name the group already has returns that checkpoint, so repeating the call is harmless. Fails with
    /// <see cref="StreamsException"/> (DeadlineExceeded) if a reader did not answer within <paramref name="timeout"/>
    /// (default 30 s), and (NotFound) if the group does not exist.
    /// </summary>
    public async Task<ReaderGroupCheckpoint> CreateCheckpointAsync(string scope, string group, string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var wait = timeout ?? DefaultCheckpointTimeout;
        if (wait <= TimeSpan.Zero || wait.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), $"A checkpoint's timeout must be positive (is {wait}).");
        }

        var request = new Contracts.Controller.CreateCheckpointRequest { Scope = scope, Group = group, Name = name, TimeoutMs = (int)Math.Ceiling(wait.TotalMilliseconds) };
        return ReaderGroupCheckpoint.From(await _controller.CallGroupsAsync((c, o) => c.CreateCheckpointAsync(request, o), cancellationToken, serverWait: wait));
    }

    /// <summary>
    /// Moves a reader group to <paramref name="cuts"/> (at most one per stream; a stream without one restarts at its
    /// configured start): every reader's segments are taken back at once, and reading restarts at the cuts in a new
    /// generation. What the readers had buffered and not processed is dropped; what they processed after the cuts is
    /// read again. Fails with <see cref="StreamsException"/> (InvalidArgument) for a cut of a stream the group does not
    /// read or of segments the stream never had.
    /// </summary>
    public async Task<ReaderGroupDescription> ResetReaderGroupAsync(string scope, string group, IReadOnlyList<StreamCut> cuts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cuts);
        var request = new Contracts.Controller.ResetReaderGroupRequest { Scope = scope, Group = group };
        request.Cuts.AddRange(ReaderGroupConfig.CutsByStream(cuts, nameof(cuts)).Values.Select(c => c.ToContract()));
        return ReaderGroupDescription.From(await _controller.CallGroupsAsync((c, o) => c.ResetReaderGroupAsync(request, o), cancellationToken));
    }

    /// <summary>
    /// Moves a reader group to a complete checkpoint's cuts; as <see cref="ResetReaderGroupAsync(string, string, IReadOnlyList{StreamCut}, CancellationToken)"/>.
    /// Throws <see cref="ArgumentException"/> for a checkpoint that is not complete (its cuts are not final).
    /// </summary>
    public Task<ReaderGroupDescription> ResetReaderGroupAsync(string scope, string group, ReaderGroupCheckpoint checkpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!checkpoint.Complete)
        {
            throw new ArgumentException($"Checkpoint '{checkpoint.Name}' is not complete (a reader has not answered it), so its cuts are not final: take another one.", nameof(checkpoint));
        }

        return ResetReaderGroupAsync(scope, group, checkpoint.Cuts, cancellationToken);
    }

    /// <summary>
    /// Replaces a reader group's configuration (its streams, cuts and timings) and restarts it in a new generation:
    /// every reader's segments are taken back, and reading starts again from the new start cuts (a stream without one:
    /// from the group's committed positions). Fails with <see cref="StreamsException"/> (NotFound) if the group or a
    /// stream does not exist, and with <see cref="ArgumentException"/> if the configuration is not valid.
    /// </summary>
    public async Task<ReaderGroupDescription> UpdateReaderGroupAsync(string scope, string group, ReaderGroupConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var request = new Contracts.Controller.UpdateReaderGroupRequest { Scope = scope, Group = group, Config = config.ToContract() };
        return ReaderGroupDescription.From(await _controller.CallGroupsAsync((c, o) => c.UpdateReaderGroupAsync(request, o), cancellationToken));
    }

    /// <summary>A handle on a reader group, for its checkpoints, resets, readers and management; it calls nothing by itself.</summary>
    public ReaderGroup GetReaderGroup(string scope, string group) => new(this, scope, group);

    /// <summary>
    /// Creates a reader of a reader group, named <paramref name="readerId"/> (unique in the group: a second reader with
    /// the same id replaces the first). It joins when first enumerated; see <see cref="GroupReader{T}.ReadAsync"/>.
    /// </summary>
    public GroupReader<T> CreateReader<T>(string scope, string group, string readerId, IEventSerializer<T> serializer, GroupReaderOptions? options = null) =>
        new(scope, group, readerId, serializer, options ?? new GroupReaderOptions(), _controller, _pool, _options.ReconnectTimeout);

    /// <summary>Closes the connections. Dispose writers first, so their buffered events are flushed.</summary>
    public async ValueTask DisposeAsync()
    {
        await _pool.DisposeAsync();
        _controller.Dispose();
    }
}
