using System.Buffers;
using Microsoft.Extensions.Logging;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;
using Streams.Tier2;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// A segment container: the unit of ownership, recovery and failover for the segments hashed onto it. It only wires
/// its parts together; each part owns its state and its lock and talks to the others through its contract.
/// <para>
/// Why it is built this way. Every mutation (create, append, seal, truncate, delete) is validated against the
/// accepted view of the metadata, serialized into the current frame and applied to the durable view only after
/// the frame is durable in the log. Frames are written and committed strictly in order, so the durable view is
/// always a prefix of the log: a crash loses only unacknowledged operations, and recovery (replaying the log)
/// rebuilds exactly the acknowledged state. Nothing is acknowledged before its frame is durable.
/// </para>
/// <para>
/// If the log fails (an I/O error, or fencing by a new owner), the container stops: every pending operation is
/// answered with <see cref="OutcomeStatus.ContainerUnavailable"/> (clients retry; deduplication makes it safe),
/// and its owner restarts it, which recovers from the log.
/// </para>
/// <para>
/// The parts, what each owns, and the locks:
/// <list type="bullet">
/// <item><see cref="OperationLog"/> (<see cref="IOperationLog"/>): frames (current, unwritten, in flight), frame
/// sequence numbers, the container's state and failure, the log's truncation point. Its own lock.</item>
/// <item><see cref="ContainerMetadata"/> (<see cref="IContainerMetadata"/>): segments by name and id, the next segment
/// id, each segment's accepted view (pending lengths, seal, deletion, storage length, chunk list, writers) and its durable
/// view. Its own lock.</item>
/// <item><see cref="ContainerReadIndex"/> (<see cref="IReadIndex"/>): the Tier 2 fetches in flight, and this container's
/// use of the shared frame and chunk caches (each with its own lock). Segment index entries have their own locks.</item>
/// <item><see cref="StorageWriter"/> (<see cref="IStorageWriter"/>): the Tier 1 budget (lock-free), the durable
/// checkpoints not yet truncated (its own lock), the chunks of deleted segments still to delete, its loop.</item>
/// <item><see cref="ContainerRecovery"/> (<see cref="IContainerRecovery"/>): nothing that outlives the start.</item>
/// <item><see cref="ContainerLoad"/>: the load timer and the last load reported; it reads segments through the
/// metadata and ticks each segment's meter (whose lock is a leaf).</item>
/// </list>
/// Lock order: the metadata's lock, then the operation log's. Only the metadata calls another part while holding its
/// lock: it hands accepted operations to the operation log in the same critical section as their validation, so the log's
/// order is the order of acceptance. No other part calls out while holding its lock (the caches' and segment indexes'
/// locks are leaves), so there are no other orders to keep. The operation log's commit loop holds no lock while it
/// applies a frame (<see cref="ApplyDurable"/>): the metadata takes its own lock for that, the others none.
/// </para>
/// <para>
/// Lifecycle. A container starts once and is disposed once; disposal may come at any time, also while it recovers (its
/// owner lost it). Disposal cancels the recovery and waits for it to end before it tears the parts down, and a recovery
/// that ends after disposal began never starts the loops: a stopped container can never come back to life, and its
/// log is never closed under a recovery still reading it. The decision between the two is made under
/// <c>_lifecycle</c>, a leaf lock. A stop is bounded (<see cref="ContainerOptions.StopTimeout"/>): a log that never
/// answers (frames waiting for bookies that fenced it, a close waiting for a lost metadata session) is abandoned, its
/// pending operations answered "unavailable", and the teardown, in the same order, ends in the background. Its owner
/// may then start a new copy: that copy's recovery fences the old one's ledgers, so the old one writes nothing more.
/// </para>
/// </summary>
public sealed partial class SegmentContainer : IAsyncDisposable, IOperationApplier
{
    private readonly ILogger _logger;
    private readonly OperationLog _log;
    private readonly ContainerMetadata _metadata;
    private readonly ContainerReadIndex _readIndex;
    private readonly StorageWriter _storageWriter;
    private readonly ContainerRecovery _recovery;
    private readonly ContainerLoad _load;
    private readonly List<DeletedSegment> _deleted = []; // reused by the commit path, which applies one frame at a time
    private readonly object _lifecycle = new();
    private readonly CancellationTokenSource _disposing = new();
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<bool> _serving = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeSpan _stopTimeout;
    private readonly TimeSpan _transactionExpiry;
    private Task? _starting;
    private bool _stopping;

    /// <param name="id">The container's number.</param>
    /// <param name="log">Its durable log (Tier 1).</param>
    /// <param name="cache">The read cache of log frames, shared by the store's containers.</param>
    /// <param name="options">Pipeline and storage-writer settings.</param>
    /// <param name="logger">Where the container logs.</param>
    /// <param name="tier2">Long-term storage; null keeps every byte in the log (no storage writer, no log truncation).</param>
    /// <param name="chunkCache">Cache of chunks read back from Tier 2 (separate from <paramref name="cache"/>, so readers catching up never evict the tail).</param>
    /// <param name="loadSink">Where load reports go; null measures load (for checkpoints and seeds) but reports none.</param>
    /// <param name="store">The segment store named in load reports.</param>
    public SegmentContainer(
        int id, IDurableDataLog log, FrameCache cache, ContainerOptions options, ILogger logger, IChunkStorage? tier2 = null, ChunkCache? chunkCache = null,
        ISegmentLoadSink? loadSink = null, string store = "")
    {
        options.Validate();
        Id = id;
        _logger = logger;
        _stopTimeout = options.StopTimeout;
        _transactionExpiry = options.TransactionSegmentExpiry;
        var budget = new Tier1Budget(id, options.Storage, tier2?.Location, logger);
        _log = new OperationLog(id, log, options, logger);
        _metadata = new ContainerMetadata(id, _log, budget, options, logger);
        _readIndex = new ContainerReadIndex(id, _metadata, _log, cache, tier2,
            tier2 is null ? null : chunkCache ?? new ChunkCache(4L * options.Storage.MaxChunkSize), options.MaxReadBytes);
        _storageWriter = new StorageWriter(id, _log, _metadata, _readIndex, tier2, budget, options, logger);
        _recovery = new ContainerRecovery(id, _log, _metadata, _readIndex, _storageWriter, logger);
        _load = new ContainerLoad(id, _metadata, options.Load, loadSink, store, logger);
    }

    public int Id { get; }

    public ContainerState State => _log.State;

    /// <summary>Why the container failed, if it did.</summary>
    public Exception? Failure => _log.Failure;

    /// <summary>Completes when the container fails (not when it is stopped).</summary>
    public Task Failed => _log.Failed;

    /// <summary>Completes once the container is disposed.</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>
    /// Completes with true once the container serves, or with false if its start fails or it is stopped first (so a
    /// request that arrives while it recovers can wait for it instead of being sent away to retry).
    /// </summary>
    public Task<bool> Serving => _serving.Task;

    /// <summary>Accepted bytes not yet durably in Tier 2.</summary>
    public long UnflushedBytes => _storageWriter.UnflushedBytes;

    /// <summary>Whether the last Tier 2 request failed (the storage writer is retrying).</summary>
    public bool Tier2Failing => _storageWriter.Tier2Failing;

    /// <summary>Where the log was last truncated (nothing before it is in Tier 1 any more).</summary>
    public LogAddress TruncatedAt => _log.TruncatedAt;

    /// <summary>
    /// Takes ownership of the log, replays it, and starts serving. Called once. Throws
    /// <see cref="OperationCanceledException"/> if the container is disposed before it serves (it then never does).
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        lock (_lifecycle)
        {
            if (_stopping)
            {
                throw new OperationCanceledException($"Container {Id} was stopped before it started.");
            }

            if (_starting is not null)
            {
                throw new InvalidOperationException($"Container {Id} was already started.");
            }

            return _starting = StartCoreAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Stops serving: pending operations are answered "unavailable", a recovery in progress is cancelled and waited for,
    /// then the parts are closed. Returns within <see cref="ContainerOptions.StopTimeout"/> whatever the log does: past
    /// it the log is abandoned (fencing protects its data) and the teardown ends in the background. Safe to call more
    /// than once and at the same time as <see cref="StartAsync"/>.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Task? starting;
        lock (_lifecycle)
        {
            if (_stopping)
            {
                starting = null;
            }
            else
            {
                _stopping = true;
                starting = _starting ?? Task.CompletedTask;
            }
        }

        if (starting is null)
        {
            await _disposed.Task;
            return;
        }

        try
        {
            await _disposing.CancelAsync();
            _log.Stop();
            var teardown = TeardownAsync(starting);
            if (await Task.WhenAny(teardown, Task.Delay(_stopTimeout)) != teardown)
            {
                // The log waits for something that will not come (bookies that fenced it, a metadata session that is
                // gone). Fencing keeps the data safe, so the container stops now; its teardown ends in the background.
                _logger.LogWarning("Container {Container}: its log did not stop within {Timeout} s; abandoning it (the next owner fences it).",
                    Id, _stopTimeout.TotalSeconds);
                _log.Abandon();
                _ = teardown.ContinueWith(t => _logger.LogInformation("Container {Container}: the abandoned log's teardown ended{Error}.", Id,
                    t.Exception is { } e ? $" with {e.InnerException?.Message}" : ""), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
            else
            {
                await teardown;
            }
        }
        finally
        {
            _serving.TrySetResult(false);
            _disposed.TrySetResult();
        }
    }

    /// <summary>Waits for the recovery to be over, then closes the parts in order: the log last.</summary>
    private async Task TeardownAsync(Task starting)
    {
        // Its outcome belongs to the caller of StartAsync; here it only has to be over.
        await starting.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        await (_expiring ?? Task.CompletedTask);
        await _load.DisposeAsync();
        await _storageWriter.DisposeAsync();
        await _log.DisposeAsync();
        _readIndex.Dispose();
        _disposing.Dispose();
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RecoverAndStartAsync(cancellationToken);
            _serving.TrySetResult(true);
        }
        catch
        {
            _serving.TrySetResult(false);
            throw;
        }
    }

    private async Task RecoverAndStartAsync(CancellationToken cancellationToken)
    {
        await Task.Yield(); // the caller holds _lifecycle
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        // Ended before the parts start, so their loops do not run under it.
        RecoveryResult recovered;
        using (var recovery = SegmentStoreTracing.Source.StartActivity("RecoverContainer"))
        {
            recovery?.SetTag("streams.container", Id);
            try
            {
                await _log.OpenAsync(stopping.Token);
                recovered = await _recovery.RecoverAsync(stopping.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException && Volatile.Read(ref _stopping))
            {
                // Whatever the log said once it was stopped under the recovery (closed, not open), the cause is the stop.
                throw new OperationCanceledException($"Container {Id} was stopped while it recovered.", e);
            }

            recovery?.SetTag("streams.frames", recovered.Frames).SetTag("streams.segments", _metadata.SegmentCount);
        }

        lock (_lifecycle)
        {
            if (_stopping)
            {
                throw new OperationCanceledException($"Container {Id} was stopped while it recovered.");
            }

            _log.Start(recovered.NextSequence, this);
            _storageWriter.Start();
            _load.Start();
            _expiring = Task.Run(() => ExpireTransactionSegmentsLoopAsync(_disposing.Token), CancellationToken.None);
        }

        _logger.LogInformation("Container {Container} is running with {Segments} segments.", Id, _metadata.SegmentCount);
    }

    // ---- Appends -----------------------------------------------------------------------------------

    /// <summary>
    /// Accepts a block of framed events into the current frame. The data is copied exactly once, before this
    /// method returns, so the caller may release its receive buffer right after. Thread-safe.
    /// </summary>
    public AppendAcceptance TryAppend(
        string segmentName,
        Guid writer,
        long lastEventNumber,
        int eventCount,
        long? expectedOffset,
        in ReadOnlySequence<byte> data,
        IOperationCallback callback,
        long token,
        out OperationOutcome outcome,
        ulong keySample = 0) =>
        _metadata.TryAppend(segmentName, writer, lastEventNumber, eventCount, expectedOffset, data, callback, token, out outcome, keySample);

    /// <summary>
    /// Waits until the pipeline has room for more frames, or the Tier 1 budget room for more data (back-pressure for
    /// appends). While the budget is full this returns at least once a second, so the caller re-checks its timeout.
    /// </summary>
    public Task WaitForCapacityAsync(CancellationToken cancellationToken) => _log.WaitForCapacityAsync(_storageWriter.OverBudget, cancellationToken);

    /// <summary>
    /// Answers, through <paramref name="callback"/>, with the writer's last durable event number on the segment,
    /// once everything accepted before this call is durable.
    /// </summary>
    public void SetupAppend(string segmentName, Guid writer, IOperationCallback callback, long token)
    {
        if (_metadata.SetupAppend(segmentName, writer, callback, token) is { } now)
        {
            callback.OnCompleted(token, now);
        }
    }

    /// <summary>Appends and waits for the outcome, applying back-pressure by waiting for capacity.</summary>
    public async Task<OperationOutcome> AppendAsync(
        string segmentName, Guid writer, long lastEventNumber, int eventCount, long? expectedOffset, ReadOnlyMemory<byte> data,
        CancellationToken cancellationToken = default)
    {
        var completion = new OperationCompletion();
        var sequence = new ReadOnlySequence<byte>(data);
        while (true)
        {
            var acceptance = TryAppend(segmentName, writer, lastEventNumber, eventCount, expectedOffset, sequence, completion, 0, out var outcome);
            switch (acceptance)
            {
                case AppendAcceptance.Completed:
                    return outcome;
                case AppendAcceptance.Accepted:
                    return await completion.Task.WaitAsync(cancellationToken);
                default:
                    await WaitForCapacityAsync(cancellationToken);
                    break;
            }
        }
    }

    // ---- Reads and segment admin -------------------------------------------------------------------

    /// <summary>
    /// Reads durable bytes of a segment. At the tail, waits up to <paramref name="wait"/> for new data.
    /// The result may hold cached frames: dispose it once its data is sent.
    /// </summary>
    public ValueTask<SegmentRead> ReadAsync(string name, long offset, int maxBytes, TimeSpan wait, CancellationToken cancellationToken = default) =>
        _readIndex.ReadAsync(name, offset, maxBytes, wait, cancellationToken);

    public Task<OperationOutcome> CreateSegmentAsync(string name, CancellationToken cancellationToken = default) =>
        CreateSegmentAsync(name, null, cancellationToken);

    /// <summary>Creates a segment; a successor's load starts at <paramref name="seed"/> (its share of its predecessors').</summary>
    public Task<OperationOutcome> CreateSegmentAsync(string name, LoadState? seed, CancellationToken cancellationToken = default)
    {
        var completion = new OperationCompletion();
        return _metadata.Create(name, completion, seed) is { } now ? Task.FromResult(now) : completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Replaces the inherited ranges of the named writers (their own event numbers are untouched); answers once the
    /// change is durable. Idempotent.
    /// </summary>
    public Task<OperationOutcome> InheritWritersAsync(string name, IReadOnlyList<(Guid Writer, InheritedRange[] Ranges)> writers, CancellationToken cancellationToken = default)
    {
        var completion = new OperationCompletion();
        return _metadata.Inherit(name, writers, completion) is { } now ? Task.FromResult(now) : completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>The segment's writer records and whether it is sealed; null if it does not exist.</summary>
    public (bool Sealed, List<WriterRecord> Writers)? GetWriterRecords(string name) => _metadata.WriterRecords(name);

    /// <summary>Whether the segment is sealed, the writer's last durable event number and what it inherited.</summary>
    public (bool Sealed, long LastEventNumber, IReadOnlyList<InheritedRange> Inherited) DescribeWriter(string name, Guid writer) =>
        _metadata.DescribeWriter(name, writer);

    /// <summary>The segment's measured load now, or null if it does not exist.</summary>
    public LoadState? GetLoad(string name) => _metadata.FindDurable(name)?.Load.Capture();

    /// <summary>One tick of the load timer, <paramref name="elapsedMs"/> after the previous (tests drive it by hand).</summary>
    internal Task? TickLoad(long elapsedMs) => _load.Tick(elapsedMs);

    public Task<OperationOutcome> SealSegmentAsync(string name, CancellationToken cancellationToken = default) =>
        Mutate(name, OperationType.Seal, 0, cancellationToken);

    public Task<OperationOutcome> TruncateSegmentAsync(string name, long offset, CancellationToken cancellationToken = default) =>
        Mutate(name, OperationType.Truncate, offset, cancellationToken);

    public Task<OperationOutcome> DeleteSegmentAsync(string name, CancellationToken cancellationToken = default) =>
        Mutate(name, OperationType.Delete, 0, cancellationToken);

    /// <summary>The segment's durable state, or null if it does not exist.</summary>
    public SegmentInfo? GetInfo(string name)
    {
        var segment = _metadata.FindDurable(name);
        return segment is null
            ? null
            : new SegmentInfo
            {
                Segment = segment.Name,
                Length = segment.Length,
                StartOffset = segment.StartOffset,
                Sealed = segment.IsSealed,
                CreatedAtUnixMs = segment.CreatedAtUnixMs,
            };
    }

    /// <summary>Names of the segments whose creation is durable.</summary>
    public IReadOnlyList<string> ListSegments() => _metadata.ListSegments();

    /// <summary>Deletes unreferenced chunks of earlier owners from Tier 2 now (the storage writer does it periodically).</summary>
    internal Task<int> SweepOrphansAsync(CancellationToken cancellationToken) => _storageWriter.SweepOrphansAsync(cancellationToken);

    // ---- The commit path: a durable frame reaches each part ------------------------------------------

    /// <inheritdoc/>
    public void ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed)
    {
        if (frame.HasAppends)
        {
            _readIndex.OnFrameDurable(address, frame.Builder.Detach(), frame.Record.Length);
        }
        else
        {
            frame.Builder.Dispose();
        }

        if (frame.Checkpoint is { } checkpoint)
        {
            _storageWriter.OnCheckpointDurable(address);
            answers.Add(new DurableAnswer(checkpoint.Completion, 0, new OperationOutcome(OutcomeStatus.Success)));
        }

        var storageChanged = _metadata.ApplyDurable(frame, address, answers, changed, _deleted);
        _storageWriter.OnDurable(storageChanged, _deleted);
        _deleted.Clear();
    }

    /// <inheritdoc/>
    public void OnLogStopped() => _metadata.SignalAll();

    private Task<OperationOutcome> Mutate(string name, OperationType type, long offset, CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        return _metadata.Mutate(name, type, offset, completion) is { } now ? Task.FromResult(now) : completion.Task.WaitAsync(cancellationToken);
    }
}
