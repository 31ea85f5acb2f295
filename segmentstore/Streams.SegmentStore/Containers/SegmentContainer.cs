using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;
using Streams.Tier2;

namespace Streams.SegmentStore.Containers;

public enum ContainerState
{
    Created,
    Recovering,
    Running,
    Failed,
    Stopped,
}

/// <summary>
/// A segment container: the unit of ownership, recovery and failover for the segments hashed onto it.
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
/// </summary>
public sealed partial class SegmentContainer : IAsyncDisposable
{
    private readonly IDurableDataLog _log;
    private readonly FrameCache _cache;
    private readonly ContainerOptions _options;
    private readonly ILogger _logger;
    private readonly object _sync = new();
    private readonly Dictionary<string, SegmentMetadata> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<long, SegmentMetadata> _byId = [];
    private readonly LinkedList<PendingFrame> _pending = new();
    private readonly Queue<PendingFrame> _unwritten = new();
    private readonly SemaphoreSlim _writeSignal = new(0, int.MaxValue);
    private readonly Channel<PendingFrame> _written = Channel.CreateUnbounded<PendingFrame>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private PendingFrame? _current;
    private TaskCompletionSource _capacity = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _nextSegmentId = 1;
    private long _nextSequence;
    private int _writing;
    private volatile ContainerState _state = ContainerState.Created;
    private Exception? _failure;
    private Task? _writerLoop;
    private Task? _commitLoop;

    /// <param name="id">The container's number.</param>
    /// <param name="log">Its durable log (Tier 1).</param>
    /// <param name="cache">The read cache of log frames, shared by the store's containers.</param>
    /// <param name="options">Pipeline and storage-writer settings.</param>
    /// <param name="logger">Where the container logs.</param>
    /// <param name="tier2">Long-term storage; null keeps every byte in the log (no storage writer, no log truncation).</param>
    /// <param name="chunkCache">Cache of chunks read back from Tier 2 (separate from <paramref name="cache"/>, so readers catching up never evict the tail).</param>
    public SegmentContainer(int id, IDurableDataLog log, FrameCache cache, ContainerOptions options, ILogger logger, IChunkStorage? tier2 = null, FrameCache? chunkCache = null)
    {
        options.Validate();
        Id = id;
        _log = log;
        _cache = cache;
        _options = options;
        _logger = logger;
        _tier2 = tier2;
        _chunkCache = tier2 is null ? null : chunkCache ?? new FrameCache(4L * options.Storage.MaxChunkSize);
    }

    public int Id { get; }

    public ContainerState State => _state;

    /// <summary>Why the container failed, if it did.</summary>
    public Exception? Failure => _failure;

    /// <summary>Completes when the container fails (not when it is stopped).</summary>
    public Task Failed => _failed.Task;

    private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Takes ownership of the log, replays it, and starts serving.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_state != ContainerState.Created)
        {
            throw new InvalidOperationException($"Container {Id} was already started.");
        }

        _state = ContainerState.Recovering;
        // Ended before the loops start, so they do not run under it.
        using (var recovery = SegmentStoreTracing.Source.StartActivity("RecoverContainer"))
        {
            recovery?.SetTag("streams.container", Id);
            await _log.OpenAsync(cancellationToken);
            var frames = await RecoverAsync(cancellationToken);
            recovery?.SetTag("streams.frames", frames).SetTag("streams.segments", _byId.Count);
        }

        _writerLoop = Task.Run(WriterLoopAsync, CancellationToken.None);
        _commitLoop = Task.Run(CommitLoopAsync, CancellationToken.None);
        _state = ContainerState.Running;
        if (_tier2 is not null)
        {
            _storageLoop = Task.Run(StorageLoopAsync, CancellationToken.None);
        }

        _logger.LogInformation("Container {Container} is running with {Segments} segments.", Id, _byId.Count);
    }

    public async ValueTask DisposeAsync()
    {
        lock (_sync)
        {
            if (_state is ContainerState.Running or ContainerState.Recovering or ContainerState.Created)
            {
                _state = ContainerState.Stopped;
            }
        }

        // Let frames already handed to the log finish, so their writers get answers.
        _written.Writer.TryComplete();
        await _stop.CancelAsync();
        if (_writerLoop is not null)
        {
            await _writerLoop;
        }

        if (_commitLoop is not null)
        {
            await _commitLoop;
        }

        if (_storageLoop is not null)
        {
            await _storageLoop;
        }

        FailPending(new ObjectDisposedException($"container {Id}"), "The container is shutting down.");
        await _log.DisposeAsync();
        _cache.RemoveContainer(Id);
        _stop.Dispose();
        _writeSignal.Dispose();
        _storageSignal.Dispose();
    }

    /// <summary>
    /// Waits until the pipeline has room for more frames, or the Tier 1 budget room for more data (back-pressure for
    /// appends). While the budget is full this returns at least once a second, so the caller re-checks its timeout.
    /// </summary>
    public async Task WaitForCapacityAsync(CancellationToken cancellationToken)
    {
        Task capacity;
        bool budget;
        lock (_sync)
        {
            if (_state != ContainerState.Running)
            {
                return;
            }

            budget = _pending.Count < _options.MaxPendingFrames;
            if (budget && !OverBudget)
            {
                return;
            }

            capacity = _capacity.Task;
        }

        if (!budget)
        {
            await capacity.WaitAsync(cancellationToken);
            return;
        }

        try
        {
            await capacity.WaitAsync(TimeSpan.FromSeconds(1), cancellationToken);
        }
        catch (TimeoutException)
        {
            // Re-check: the caller's append either fits now, waits again, or times out.
        }
    }

    // ---- The pipeline ------------------------------------------------------------------------------

    /// <summary>Starts writes of sealed frames, in order, keeping at most MaxConcurrentWrites in flight.</summary>
    private async Task WriterLoopAsync()
    {
        try
        {
            while (true)
            {
                await _writeSignal.WaitAsync(_stop.Token);
                while (true)
                {
                    PendingFrame? frame = null;
                    List<DataFrameBuilder>? pages = null;
                    Task? serializing = null;
                    lock (_sync)
                    {
                        if (_state != ContainerState.Running || _writing >= _options.MaxConcurrentWrites)
                        {
                            break;
                        }

                        if (_unwritten.Count == 0)
                        {
                            // The log is ready for more: the current frame goes now, however full.
                            if (_current is null || _current.Builder.IsEmpty)
                            {
                                break;
                            }

                            SealCurrent();
                        }

                        if (_unwritten.Peek().CheckpointPages is { IsCompletedSuccessfully: false })
                        {
                            serializing = _unwritten.Peek().CheckpointPages; // a checkpoint's turn: nothing after it goes first
                        }
                        else
                        {
                            frame = _unwritten.Dequeue();
                            if (frame.CheckpointPages is { } ready)
                            {
                                pages = ready.Result;
                                frame.Record = pages[0].Seal(_nextSequence++);
                                for (var i = 1; i < pages.Count; i++)
                                {
                                    _logBytes += pages[i].Seal(_nextSequence++).Length;
                                }
                            }
                            else
                            {
                                frame.Record = frame.Builder.Seal(_nextSequence++);
                            }

                            _writing++;
                            _logBytes += frame.Record.Length;
                        }
                    }

                    if (frame is null)
                    {
                        // A checkpoint's turn: wait until it is serialized; if that failed, so does the container.
                        await serializing!.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                        if (serializing.Exception is { } failed)
                        {
                            Fail(failed.InnerException ?? failed);
                            break;
                        }

                        continue;
                    }

                    frame.WriteStarted = Stopwatch.GetTimestamp();
                    frame.Write = pages is null ? _log.AppendAsync(frame.Record, CancellationToken.None).AsTask() : AppendPagesAsync(frame.Record, pages);
                    _written.Writer.TryWrite(frame);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Writes a checkpoint's pages as consecutive records (appends are queued in call order) and completes with the first
    /// one's address once all are durable; then releases their buffers.
    /// </summary>
    private async Task<LogAddress> AppendPagesAsync(ReadOnlyMemory<byte> first, List<DataFrameBuilder> pages)
    {
        try
        {
            var writes = new List<Task<LogAddress>>(pages.Count) { _log.AppendAsync(first, CancellationToken.None).AsTask() };
            for (var i = 1; i < pages.Count; i++)
            {
                writes.Add(_log.AppendAsync(pages[i].Sealed, CancellationToken.None).AsTask());
            }

            await Task.WhenAll(writes);
            return await writes[0];
        }
        finally
        {
            pages.ForEach(p => p.Dispose());
        }
    }

    /// <summary>Applies durable frames in log order and answers their operations.</summary>
    private async Task CommitLoopAsync()
    {
        var completions = new List<(IOperationCallback Callback, long Token, OperationOutcome Outcome)>();
        var changed = new HashSet<SegmentMetadata>();
        await foreach (var frame in _written.Reader.ReadAllAsync())
        {
            LogAddress address;
            try
            {
                address = await frame.Write!;
            }
            catch (Exception e)
            {
                Fail(e);
                continue;
            }

            if (frame.HasAppends)
            {
                _cache.Add(new FrameKey(Id, address), frame.Builder.Detach(), frame.Record.Length);
            }
            else
            {
                frame.Builder.Dispose();
            }

            lock (_sync)
            {
                if (_state == ContainerState.Failed)
                {
                    continue;
                }

                _pending.RemoveFirst();
                _writing--;
                long appendedBytes = 0, appendedBlocks = 0, appendedEvents = 0;
                foreach (var op in frame.Operations)
                {
                    if (op.Kind == PendingKind.Append)
                    {
                        appendedBytes += op.Length;
                        appendedBlocks++;
                        appendedEvents += op.EventCount;
                    }

                    var outcome = ApplyDurable(op, address);
                    if (op.Callback is not null)
                    {
                        completions.Add((op.Callback, op.Token, outcome));
                    }

                    changed.Add(op.Segment);
                }

                SignalCapacity();
                SegmentStoreMetrics.AppendedBytes.Add(appendedBytes);
                SegmentStoreMetrics.AppendedBlocks.Add(appendedBlocks);
                SegmentStoreMetrics.Appends.Add(appendedEvents);
            }

            SegmentStoreMetrics.LogFrames.Add(1);
            SegmentStoreMetrics.LogWriteDuration.Record(Stopwatch.GetElapsedTime(frame.WriteStarted).TotalSeconds);
            _writeSignal.Release();
            foreach (var segment in changed)
            {
                segment.SignalChanged();
            }

            foreach (var (callback, token, outcome) in completions)
            {
                callback.OnCompleted(token, outcome);
            }

            completions.Clear();
            changed.Clear();
        }
    }

    /// <summary>Applies one operation of a durable frame to the durable view (container lock held).</summary>
    private OperationOutcome ApplyDurable(in PendingOperation op, LogAddress address)
    {
        var segment = op.Segment;
        switch (op.Kind)
        {
            case PendingKind.Create:
                segment.IsDurable = true;
                break;
            case PendingKind.Append:
                segment.Index.Add(new IndexEntry(op.Offset, op.Length, address, op.FrameOffset));
                segment.Length = op.Offset + op.Length;
                segment.MakeDurable(op.Writer, op.EventNumber);
                if (segment.UnflushedSince == 0)
                {
                    segment.UnflushedSince = Stopwatch.GetTimestamp();
                }

                return new OperationOutcome(OutcomeStatus.Success, segment.Length, op.EventNumber);
            case PendingKind.Seal:
                segment.IsSealed = true;
                SignalStorage();
                break;
            case PendingKind.Truncate:
                segment.StartOffset = op.Offset;
                segment.Index.TruncateBefore(op.Offset);
                SignalStorage();
                break;
            case PendingKind.Delete:
                segment.IsDeleted = true;
                segment.Index.Clear();
                _byId.Remove(segment.Id);
                OnSegmentDeleted(segment);
                break;
            case PendingKind.StorageFlushed:
                OnFlushDurable(segment, op.Offset, op.Length);
                break;
            case PendingKind.CheckpointStart:
                OnCheckpointStartDurable(op.Offset, address);
                break;
            case PendingKind.Checkpoint:
                OnCheckpointDurable(op.Offset);
                break;
            case PendingKind.SetupBarrier:
                return new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(op.Writer));
            case PendingKind.DuplicateBarrier:
                return new OperationOutcome(OutcomeStatus.Success, segment.Length, Math.Max(op.EventNumber, segment.DurableEventNumber(op.Writer)));
        }

        return new OperationOutcome(OutcomeStatus.Success, segment.Length);
    }

    /// <summary>Moves the current frame to the write queue (container lock held).</summary>
    private void SealCurrent()
    {
        if (_current is { } current && !current.Builder.IsEmpty)
        {
            _unwritten.Enqueue(current);
            _current = null;
        }
    }

    /// <summary>Returns a frame with room for an operation body of <paramref name="bodyLength"/> bytes (container lock held).</summary>
    private PendingFrame FrameFor(int bodyLength)
    {
        if (_current is { } current && current.Builder.HasRoomFor(bodyLength))
        {
            return current;
        }

        SealCurrent();
        var capacity = Math.Max(_options.MaxFrameSize, DataFrame.HeaderSize + DataFrame.OperationHeaderSize + bodyLength + DataFrame.TrailerSize);
        _current = new PendingFrame(new DataFrameBuilder(capacity));
        _pending.AddLast(_current);
        return _current;
    }

    /// <summary>Attaches an answer that must wait until everything accepted so far is durable (container lock held).</summary>
    private bool TryAttachBarrier(in PendingOperation barrier)
    {
        if (_pending.Last is { } last)
        {
            last.Value.Operations.Add(barrier);
            return true;
        }

        return false;
    }

    private void SignalCapacity()
    {
        var previous = _capacity;
        _capacity = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        previous.TrySetResult();
    }

    private void Fail(Exception error)
    {
        lock (_sync)
        {
            if (_state == ContainerState.Failed)
            {
                return;
            }

            _state = ContainerState.Failed;
            _failure = error;
        }

        _logger.LogError(error, "Container {Container} failed; its pending operations are answered with 'retry'.", Id);
        FailPending(error, $"Container {Id} failed: {error.Message}. Retry.");
        _failed.TrySetResult();
    }

    private void FailPending(Exception error, string message)
    {
        List<PendingOperation> operations = [];
        lock (_sync)
        {
            _failure ??= error;
            foreach (var frame in _pending)
            {
                operations.AddRange(frame.Operations);
                // A frame being written may still be read by the log: leave its buffer to the GC.
                if (frame.Write is null)
                {
                    frame.Builder.Dispose();
                }
            }

            _pending.Clear();
            _unwritten.Clear();
            _current = null;
            SignalCapacity();
        }

        var outcome = OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, message);
        foreach (var op in operations)
        {
            op.Callback?.OnCompleted(op.Token, outcome);
        }

        foreach (var segment in SnapshotSegments())
        {
            segment.SignalChanged();
        }
    }

    private List<SegmentMetadata> SnapshotSegments()
    {
        lock (_sync)
        {
            return [.. _byName.Values];
        }
    }

    private OperationOutcome? Unavailable() =>
        _state == ContainerState.Running
            ? null
            : OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, _state == ContainerState.Failed
                ? $"Container {Id} failed ({_failure?.Message}); retry."
                : $"Container {Id} is not running ({_state}); retry.");
}
