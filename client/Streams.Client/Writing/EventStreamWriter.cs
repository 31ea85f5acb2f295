using System.Text;
using Streams.Client.Internal;
using Streams.Client.Serialization;
using Streams.Common.Hashing;
using Streams.Common.Wire;
using Streams.Contracts.Controller;

namespace Streams.Client.Writing;

/// <summary>
/// Writes events to a stream. An event's routing key picks its segment (docs/routing-keys.md), so events with the
/// same key are stored, and read, in the order written. <see cref="WriteEventAsync(string?, T, CancellationToken)"/>
/// completes when the event is durable (fsynced by the store); events are batched into blocks behind the scenes.
/// Thread-safe. Dispose it to flush and release its resources.
/// </summary>
public sealed class EventStreamWriter<T> : IAsyncDisposable
{
    private readonly IEventSerializer<T> _serializer;
    private readonly WriterContext _context;
    private readonly SegmentWriter[] _writers;
    private readonly double[] _keyStarts;
    private readonly bool _storeKeys;
    private int _disposed;

    private EventStreamWriter(string scope, string stream, IEventSerializer<T> serializer, WriterContext context, SegmentWriter[] writers, double[] keyStarts, bool storeKeys)
    {
        _storeKeys = storeKeys;
        Scope = scope;
        Stream = stream;
        _serializer = serializer;
        _context = context;
        _writers = writers;
        _keyStarts = keyStarts;
    }

    /// <summary>The stream's scope.</summary>
    public string Scope { get; }

    /// <summary>The stream's name.</summary>
    public string Stream { get; }

    /// <summary>
    /// Writes an event. Completes when the event is durable; faults with <see cref="StreamSealedException"/> if the
    /// stream is sealed, or <see cref="StreamsException"/> if the store could not be reached in time.
    /// Throws <see cref="ArgumentException"/> at once for an event over 8 MiB.
    /// </summary>
    /// <param name="routingKey">Events with equal keys keep their order. Null spreads events over all segments.</param>
    /// <param name="value">The event.</param>
    /// <param name="cancellationToken">Cancels waiting for buffer space (not the write once it is buffered).</param>
    public async Task WriteEventAsync(string? routingKey, T value, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        // Serialized on the caller's thread into a per-thread buffer, then copied once into the block.
        var scratch = t_scratch ??= new PooledBuffer(4096);
        scratch.Reset();
        _serializer.Serialize(value, scratch);
        if (scratch.WrittenCount > EventFraming.MaxEventSize)
        {
            var size = scratch.WrittenCount;
            scratch.Reset();
            throw new ArgumentException($"The event is {size} bytes; the limit is {EventFraming.MaxEventSize} bytes (8 MiB).", nameof(value));
        }

        var storeKey = _storeKeys && routingKey is not null;
        var key = storeKey ? Encoding.UTF8.GetBytes(routingKey!) : [];
        if (key.Length > EventFraming.MaxRoutingKeyLength)
        {
            throw new ArgumentException($"A stored routing key is at most {EventFraming.MaxRoutingKeyLength} UTF-8 bytes; this one has {key.Length}.", nameof(routingKey));
        }

        var writer = _writers[SegmentIndexOf(routingKey)];
        var bytes = EventFraming.FrameSize(scratch.WrittenCount, storeKey ? key.Length : -1);
        var budget = _context.Budget.AcquireAsync(bytes, cancellationToken);
        if (!budget.IsCompletedSuccessfully)
        {
            // Waiting for space: the scratch buffer may be reused meanwhile, so keep a copy of the payload.
            var payload = scratch.WrittenSpan.ToArray();
            await budget;
            await writer.Append(payload, key, storeKey);
            return;
        }

        await writer.Append(scratch.WrittenSpan, key, storeKey);
    }

    /// <summary>Writes an event without a routing key.</summary>
    public Task WriteEventAsync(T value, CancellationToken cancellationToken = default) => WriteEventAsync(null, value, cancellationToken);

    /// <summary>Sends everything buffered and completes when all of it is durable.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default) =>
        await Task.WhenAll(_writers.Select(w => w.FlushAsync())).WaitAsync(cancellationToken);

    /// <summary>Flushes, then closes the writer.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var writer in _writers)
        {
            await writer.DisposeAsync();
        }
    }

    internal static async Task<EventStreamWriter<T>> CreateAsync(
        string scope, string stream, IEventSerializer<T> serializer, EventWriterOptions options,
        ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout, CancellationToken cancellationToken)
    {
        options.Validate();
        var active = await controller.GetActiveSegmentsAsync(scope, stream, cancellationToken);
        if (active.State == StreamState.Sealed)
        {
            throw new StreamSealedException($"Stream {scope}/{stream} is sealed: it accepts no more events.");
        }

        var segments = active.Segments.OrderBy(s => s.KeyStart).ToArray();
        var context = new WriterContext(controller, pool, new ByteBudget(options.MaxBufferedBytes), reconnectTimeout);
        var writerId = options.WriterId ?? Guid.NewGuid();
        var writers = segments.Select(s => new SegmentWriter(s.Segment, writerId, context, options)).ToArray();
        return new EventStreamWriter<T>(scope, stream, serializer, context, writers, [.. segments.Select(s => s.KeyStart)], options.StoreRoutingKeys);
    }

    private int SegmentIndexOf(string? routingKey)
    {
        if (_writers.Length == 1)
        {
            return 0;
        }

        var point = routingKey is null ? Random.Shared.NextDouble() : KeySpace.PointOf(routingKey);
        // The last segment whose range starts at or below the point owns it.
        var index = Array.BinarySearch(_keyStarts, point);
        return index >= 0 ? index : (~index) - 1;
    }

    [ThreadStatic]
    private static PooledBuffer? t_scratch;
}
