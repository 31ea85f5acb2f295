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
/// When a scale seals a segment, the writer moves the events not yet durable there to the successor segments, in
/// order and ahead of newer events for the same keys, without storing any twice (docs/scaling.md).
/// Thread-safe. Dispose it to flush and release its resources.
/// </summary>
public sealed class EventStreamWriter<T> : IAsyncDisposable
{
    private readonly IEventSerializer<T> _serializer;
    private readonly WriterContext _context;
    private readonly SegmentRouter _router;
    private readonly bool _storeKeys;
    private readonly EventWriterOptions _options;
    private int _disposed;
    private int _numbering; // 0 not decided yet, 1 by the writer, 2 by the application
    private long _lastSequence = -1;
    private readonly Queue<Parked> _parked = new();
    private Parked? _lastParked;
    private int _parkedCount;
    private bool _unparking;

    private EventStreamWriter(string scope, string stream, IEventSerializer<T> serializer, WriterContext context, SegmentRouter router, EventWriterOptions options)
    {
        _options = options;
        _storeKeys = options.StoreRoutingKeys;
        Scope = scope;
        Stream = stream;
        _serializer = serializer;
        _context = context;
        _router = router;
    }

    /// <summary>The stream's scope.</summary>
    public string Scope { get; }

    /// <summary>The stream's name.</summary>
    public string Stream { get; }

    /// <summary>
    /// Begins a transaction on the writer's stream (docs/transactions.md): its events become visible together at its
    /// commit, or never. <paramref name="lease"/> (default: the controller's, 120 s) is how long it lives without a sign
    /// of life; the transaction renews it by itself while open. The transaction shares this writer's connections and
    /// buffer budget; it does not use the writer's event numbering.
    /// </summary>
    public async Task<Transactions.ITransaction<T>> BeginTransactionAsync(TimeSpan? lease = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var request = new BeginTransactionRequest { Scope = Scope, Stream = Stream, LeaseMs = (long)(lease ?? TimeSpan.Zero).TotalMilliseconds };
        // Not retried on another controller: a begin that was answered but lost would leave a transaction behind (its lease ends it).
        var begun = await _context.Controller.CallTransactionsAsync((c, o) => c.BeginTransactionAsync(request, o), cancellationToken, idempotent: false);
        return new Transactions.Transaction<T>(begun, _serializer, _context, _options);
    }

    /// <summary>
    /// Writes an event. Completes when the event is durable; faults with <see cref="StreamSealedException"/> if the
    /// stream is sealed, or <see cref="StreamsException"/> if the store could not be reached in time.
    /// Throws <see cref="ArgumentException"/> at once for an event over 8 MiB.
    /// </summary>
    /// <param name="routingKey">Events with equal keys keep their order. Null spreads events over all segments.</param>
    /// <param name="value">The event.</param>
    /// <param name="cancellationToken">Cancels waiting for buffer space (not the write once it is buffered).</param>
    public Task WriteEventAsync(string? routingKey, T value, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Numbering(byApplication: false);
        return WriteAsync(routingKey, value, null, cancellationToken);
    }

    /// <summary>
    /// Writes an event numbered by the application: <paramref name="sequence"/> must increase with every event of this
    /// writer (gaps are fine). It makes re-sends exactly-once across restarts: a writer created again with the same
    /// <see cref="EventWriterOptions.WriterId"/> that writes an event whose sequence the stream already holds for that
    /// id (an event its predecessor wrote, acknowledged or not) completes it without storing it again. A writer numbers
    /// either all its events this way or none.
    /// </summary>
    /// <exception cref="ArgumentException">The sequence is negative or not above the previous event's.</exception>
    /// <exception cref="InvalidOperationException">The writer already wrote events without a sequence.</exception>
    public Task WriteEventAsync(string? routingKey, T value, long sequence, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Numbering(byApplication: true);
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        for (var previous = Volatile.Read(ref _lastSequence); ; previous = Volatile.Read(ref _lastSequence))
        {
            if (sequence <= previous)
            {
                throw new ArgumentException($"Sequence {sequence} is not above the previous event's ({previous}): an application's sequences must increase.", nameof(sequence));
            }

            if (Interlocked.CompareExchange(ref _lastSequence, sequence, previous) == previous)
            {
                break;
            }
        }

        return WriteAsync(routingKey, value, sequence, cancellationToken);
    }

    private void Numbering(bool byApplication)
    {
        var wanted = byApplication ? 2 : 1;
        var decided = Interlocked.CompareExchange(ref _numbering, wanted, 0);
        if (decided != 0 && decided != wanted)
        {
            throw new InvalidOperationException(byApplication
                ? "This writer already wrote events without a sequence; a writer numbers all its events or none."
                : "This writer numbers its events by the application's sequences; pass a sequence with every event.");
        }
    }

    private async Task WriteAsync(string? routingKey, T value, long? sequence, CancellationToken cancellationToken)
    {
        // Serialized on the caller's thread into a per-thread buffer, then copied once into the block.
        var scratch = t_scratch ??= new PooledBuffer(4096);
        scratch.Reset();
        _serializer.Serialize(value, scratch);
        if (scratch.WrittenCount > EventFraming.MaxEventSize)
        {
            var size = scratch.WrittenCount;
            TrimScratch(scratch);
            throw new ArgumentException($"The event is {size} bytes; the limit is {EventFraming.MaxEventSize} bytes (8 MiB).", nameof(value));
        }

        var storeKey = _storeKeys && routingKey is not null;
        var key = storeKey ? Encoding.UTF8.GetBytes(routingKey!) : [];
        if (key.Length > EventFraming.MaxRoutingKeyLength)
        {
            throw new ArgumentException($"A stored routing key is at most {EventFraming.MaxRoutingKeyLength} UTF-8 bytes; this one has {key.Length}.", nameof(routingKey));
        }

        // An event without a key gets a random point: it may go to any segment, and it keeps that place if moved.
        var hasKey = routingKey is not null;
        var point = hasKey ? KeySpace.PointOf(routingKey!) : Random.Shared.NextDouble();
        var bytes = EventFraming.FrameSize(scratch.WrittenCount, storeKey ? key.Length : -1);
        if (Volatile.Read(ref _parkedCount) > 0 || !_context.Budget.TryAcquire(bytes))
        {
            // Waiting for space: the scratch buffer may be reused meanwhile, so keep a copy of the payload.
            var parked = new Parked(scratch.WrittenSpan.ToArray(), key, storeKey, point, hasKey, sequence, bytes, cancellationToken);
            TrimScratch(scratch);
            Park(parked);
            await parked.Done.Task;
            return;
        }

        // Append copies the event into its block before it returns.
        var appended = _router.Append(scratch.WrittenSpan, key, storeKey, point, hasKey, sequence);
        TrimScratch(scratch);
        await appended;
    }

    /// <summary>
    /// Queues a write that waits for buffer space. Parked writes are appended one after another, in the order written,
    /// each once its bytes are free; while any is parked, later writes park behind it. A write that resumed on its own
    /// after the wait would race the application's next ones, which find space free and append at once: a later
    /// event of a key could pass an earlier one.
    /// </summary>
    private void Park(Parked parked)
    {
        if (parked.Token.CanBeCanceled)
        {
            parked.Registration = parked.Token.Register(static p => ((Parked)p!).TryCancel(), parked);
        }

        lock (_parked)
        {
            _parked.Enqueue(parked);
            _lastParked = parked;
            Interlocked.Increment(ref _parkedCount);
            if (_unparking)
            {
                return;
            }

            _unparking = true;
        }

        _ = Task.Run(UnparkAsync);
    }

    /// <summary>Appends the parked writes in order, each once its bytes are taken from the budget.</summary>
    private async Task UnparkAsync()
    {
        while (true)
        {
            Parked head;
            lock (_parked)
            {
                if (!_parked.TryPeek(out head!))
                {
                    _unparking = false;
                    return;
                }
            }

            try
            {
                await _context.Budget.AcquireAsync(head.Bytes, head.Token);
                if (head.TryStart())
                {
                    var appended = _router.Append(head.Payload, head.Key, head.StoreKey, head.Point, head.HasKey, head.Sequence);
                    _ = appended.ContinueWith(static (t, p) => ((Parked)p!).Settle(t), head, TaskScheduler.Default);
                }
                else
                {
                    _context.Budget.Release(head.Bytes);
                }
            }
            catch (OperationCanceledException)
            {
                head.TryCancel();
            }
            catch (Exception e)
            {
                head.Done.TrySetException(e);
            }

            lock (_parked)
            {
                _parked.Dequeue();
                if (_parked.Count == 0)
                {
                    _lastParked = null;
                }

                Interlocked.Decrement(ref _parkedCount);
            }

            head.Registration.Dispose();
            head.Handled.TrySetResult();
        }
    }

    /// <summary>Completes when every write parked now has been appended (or cancelled).</summary>
    private Task ParkedHandledAsync()
    {
        lock (_parked)
        {
            return _lastParked?.Handled.Task ?? Task.CompletedTask;
        }
    }

    /// <summary>The capacity of this thread's scratch buffer (0 when it has none), for tests.</summary>
    internal static int ScratchCapacity => t_scratch?.Capacity ?? 0;

    /// <summary>A scratch buffer that grew for a large event goes back to the pool instead of staying with the thread.</summary>
    private static void TrimScratch(PooledBuffer scratch)
    {
        scratch.Reset();
        if (scratch.Capacity > MaxRetainedScratch)
        {
            t_scratch = null;
            scratch.Dispose();
        }
    }

    /// <summary>Writes an event without a routing key.</summary>
    public Task WriteEventAsync(T value, CancellationToken cancellationToken = default) => WriteEventAsync(null, value, cancellationToken);

    /// <summary>Sends everything buffered and completes when all of it is durable (moved to successor segments if a scale sealed its segment).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        await ParkedHandledAsync().WaitAsync(cancellationToken);
        await _router.FlushAsync().WaitAsync(cancellationToken);
    }

    /// <summary>Bytes taken from the writer's budget now (buffered or unacknowledged), for tests.</summary>
    internal long BufferedBytes => _context.Budget.InUse;

    /// <summary>The routing table, for tests.</summary>
    internal SegmentRouter Router => _router;

    /// <summary>The segments the writer writes now, for tests.</summary>
    internal IReadOnlyList<string> Segments => _router.Segments;

    /// <summary>Flushes, then closes the writer.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await ParkedHandledAsync();
        await _router.DisposeAsync();
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

        var context = new WriterContext(controller, pool, new ByteBudget(options.MaxBufferedBytes), reconnectTimeout);
        var router = new SegmentRouter(scope, stream, options.WriterId ?? Guid.NewGuid(), active.Segments, context, options);
        return new EventStreamWriter<T>(scope, stream, serializer, context, router, options);
    }

    /// <summary>
    /// The scratch buffer a thread keeps between events: typical events fit, and one larger than this costs a rent from
    /// the pool for that event only, instead of every writing thread keeping the largest event it ever wrote (up to 8 MiB).
    /// </summary>
    private const int MaxRetainedScratch = 64 * 1024;

    [ThreadStatic]
    private static PooledBuffer? t_scratch;

    /// <summary>A write waiting for buffer space, with a copy of its payload.</summary>
    private sealed class Parked(byte[] payload, byte[] key, bool storeKey, double point, bool hasKey, long? sequence, long bytes, CancellationToken token)
    {
        private const int Waiting = 0, Started = 1, Cancelled = 2;
        private int _state;

        public byte[] Payload { get; } = payload;

        public byte[] Key { get; } = key;

        public bool StoreKey { get; } = storeKey;

        public double Point { get; } = point;

        public bool HasKey { get; } = hasKey;

        public long? Sequence { get; } = sequence;

        public long Bytes { get; } = bytes;

        public CancellationToken Token { get; } = token;

        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>The write's outcome: durable, failed, or cancelled while it waited.</summary>
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Set once the write left the queue (appended or cancelled).</summary>
        public TaskCompletionSource Handled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Claims the write for appending; false if it was cancelled first.</summary>
        public bool TryStart() => Interlocked.CompareExchange(ref _state, Started, Waiting) == Waiting;

        /// <summary>Cancels the write unless it was appended already (cancellation covers only the wait for space).</summary>
        public void TryCancel()
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Waiting) == Waiting)
            {
                Done.TrySetCanceled(Token);
            }
        }

        public void Settle(Task appended)
        {
            if (appended.IsFaulted)
            {
                Done.TrySetException(appended.Exception!.InnerExceptions);
            }
            else if (appended.IsCanceled)
            {
                Done.TrySetCanceled();
            }
            else
            {
                Done.TrySetResult();
            }
        }
    }
}
