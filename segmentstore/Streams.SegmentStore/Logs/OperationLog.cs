using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A container's durable operation pipeline (<see cref="IOperationLog"/>) over its <see cref="IDurableDataLog"/>.
/// <para>
/// Why it is built this way. Operations are packed into the current frame as they are accepted; the writer loop seals
/// frames and hands them to the durable log strictly in order, up to <see cref="ContainerOptions.MaxConcurrentWrites"/> at
/// once (so one group commit covers several); the commit loop awaits them in the same order and applies each to the
/// durable view before it answers its operations. The durable view is therefore always a prefix of the log: a crash loses
/// only unanswered operations, and replaying the log rebuilds exactly the answered state.
/// </para>
/// <para>
/// State and lock. This class owns the frames (current, unwritten, in flight), the frame sequence, the container's state
/// and the truncation point, all under its own lock. It never calls another part while holding it. The metadata calls in
/// while holding its own lock (so the order of frames matches the order in which the metadata accepted operations): lock
/// order metadata, then operation log. The commit loop holds no lock of its own while it calls the applier.
/// </para>
/// <para>
/// Answers. A frame's operations are answered exactly once: by the commit loop once the frame is durable, or by
/// <see cref="FailPending"/> if the log fails or stops first. The frame being applied has left the pending list already,
/// so the two never answer the same frame; a barrier attached to it before it is applied is answered with it.
/// </para>
/// </summary>
internal sealed class OperationLog : IOperationLog
{
    private readonly int _containerId;
    private readonly IDurableDataLog _log;
    private readonly ContainerOptions _options;
    private readonly ILogger _logger;
    private readonly object _sync = new();
    private readonly LinkedList<PendingFrame> _pending = new(); // accepted, not yet applied, oldest first
    private readonly Queue<PendingFrame> _unwritten = new();    // sealed, not yet handed to the log
    private readonly SemaphoreSlim _writeSignal = new(0, int.MaxValue);
    private readonly Channel<PendingFrame> _written = Channel.CreateUnbounded<PendingFrame>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _capacity = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private PendingFrame? _current;
    private PendingFrame? _applying; // left the pending list, being applied by the commit loop
    private IOperationApplier? _applier;
    private long _nextSequence;
    private long _loggedBytes;
    private int _writing;
    private bool _abandoned; // the container's stop gave up waiting for the log: nothing more is applied
    private volatile ContainerState _state = ContainerState.Created;
    private Exception? _failure;
    private LogAddress _truncatedAt = new(-1, -1);
    private Task? _writerLoop;
    private Task? _commitLoop;

    public OperationLog(int containerId, IDurableDataLog log, ContainerOptions options, ILogger logger)
    {
        _containerId = containerId;
        _log = log;
        _options = options;
        _logger = logger;
    }

    public ContainerState State => _state;

    public Exception? Failure => _failure;

    public Task Failed => _failed.Task;

    public long Epoch => _log.Epoch;

    public int MaxRecordSize => _log.MaxRecordSize;

    public long LoggedBytes => Interlocked.Read(ref _loggedBytes);

    public LogAddress TruncatedAt
    {
        get
        {
            lock (_sync)
            {
                return _truncatedAt;
            }
        }
    }

    public OperationOutcome? Unavailable() =>
        _state == ContainerState.Running
            ? null
            : OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, _state == ContainerState.Failed
                ? $"Container {_containerId} failed ({_failure?.Message}); retry."
                : $"Container {_containerId} is not running ({_state}); retry.");

    public async ValueTask OpenAsync(CancellationToken cancellationToken = default)
    {
        if (_state != ContainerState.Created)
        {
            throw new InvalidOperationException($"Container {_containerId} was already started.");
        }

        _state = ContainerState.Recovering;
        await _log.OpenAsync(cancellationToken);
    }

    public IAsyncEnumerable<LogRecord> ReadAllAsync(CancellationToken cancellationToken = default) => _log.ReadAllAsync(cancellationToken);

    public void Start(long nextSequence, IOperationApplier applier)
    {
        _nextSequence = nextSequence;
        _applier = applier;
        _writerLoop = Task.Run(WriterLoopAsync, CancellationToken.None);
        _commitLoop = Task.Run(CommitLoopAsync, CancellationToken.None);
        _state = ContainerState.Running;
    }

    public LogAcceptance TryAppend(in PendingOperation append, in ReadOnlySequence<byte> data)
    {
        var bodyLength = DataFrame.AppendHeaderSize + (int)data.Length;
        lock (_sync)
        {
            if (_state != ContainerState.Running)
            {
                return LogAcceptance.Unavailable;
            }

            var fits = _current is { } current && current.Builder.HasRoomFor(bodyLength);
            if (!fits && _pending.Count >= _options.MaxPendingFrames)
            {
                return LogAcceptance.NoCapacity;
            }

            var frame = FrameFor(bodyLength);
            var operation = append;
            operation.FrameOffset = frame.Builder.AddAppend(append.Segment.Id, append.Offset, append.Writer, append.EventNumber, data);
            frame.Operations.Add(operation);
            frame.HasAppends = true;
        }

        _writeSignal.Release();
        return LogAcceptance.Accepted;
    }

    public LogAcceptance TryAdd(in PendingOperation operation, ReadOnlySpan<byte> body = default)
    {
        var segment = operation.Segment;
        lock (_sync)
        {
            if (_state != ContainerState.Running)
            {
                return LogAcceptance.Unavailable;
            }

            switch (operation.Type)
            {
                case OperationType.CreateSegment:
                    FrameFor(18 + (segment.Name.Length * 3) + body.Length).Builder.AddCreate(segment.Id, segment.CreatedAtUnixMs, segment.Name, body);
                    break;
                case OperationType.Seal:
                case OperationType.Truncate:
                    FrameFor(16).Builder.AddSegmentValue(operation.Type, segment.Id, operation.Offset);
                    break;
                case OperationType.Delete:
                    FrameFor(16).Builder.AddDelete(segment.Id);
                    break;
                case OperationType.StorageFlushed:
                case OperationType.InheritWriters:
                    FrameFor(body.Length).Builder.AddBody(operation.Type, body);
                    break;
                default:
                    throw new ArgumentException($"{operation.Type} is not a record of its own.", nameof(operation));
            }

            _current!.Operations.Add(operation);
        }

        _writeSignal.Release();
        return LogAcceptance.Accepted;
    }

    public bool TryAttachBarrier(in PendingOperation barrier)
    {
        lock (_sync)
        {
            // The newest frame not yet applied: the last pending one, else the one being applied right now (its
            // application takes the metadata's lock, which the caller holds, so Applied cannot change meanwhile).
            var target = _pending.Last?.Value ?? _applying;
            if (target is null || target.Applied)
            {
                return false;
            }

            target.Operations.Add(barrier);
            return true;
        }
    }

    public LogAcceptance TryAddCheckpoint(PendingCheckpoint checkpoint)
    {
        lock (_sync)
        {
            if (_state != ContainerState.Running)
            {
                return LogAcceptance.Unavailable;
            }

            SealCurrent();
            var frame = new PendingFrame(new DataFrameBuilder(DataFrame.HeaderSize + DataFrame.TrailerSize), checkpoint);
            _pending.AddLast(frame);
            _unwritten.Enqueue(frame);
        }

        _writeSignal.Release();
        return LogAcceptance.Accepted;
    }

    public async Task WaitForCapacityAsync(bool overBudget, CancellationToken cancellationToken)
    {
        Task capacity;
        bool room;
        lock (_sync)
        {
            if (_state != ContainerState.Running)
            {
                return;
            }

            room = _pending.Count < _options.MaxPendingFrames;
            if (room && !overBudget)
            {
                return;
            }

            capacity = _capacity.Task;
        }

        if (!room)
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

    public ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default) => _log.ReadAsync(address, cancellationToken);

    public async ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default)
    {
        await _log.TruncateAsync(upTo, cancellationToken);
        lock (_sync)
        {
            _truncatedAt = upTo;
        }
    }

    public ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default) => _log.CheckOwnershipAsync(cancellationToken);

    public void Stop()
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
        _stop.Cancel();
    }

    /// <summary>
    /// Gives up on the log without waiting for it (the container's stop ran out of time): stops, answers every
    /// operation not yet applied with "unavailable", and applies nothing that the log still completes later. Frames
    /// already handed to the log may still become durable; their writers retry and deduplication drops the repeats.
    /// </summary>
    public void Abandon()
    {
        Stop();
        lock (_sync)
        {
            _abandoned = true;
        }

        FailPending(new TimeoutException($"container {_containerId}: its log did not stop in time"), $"Container {_containerId} is stopping; retry.");
    }

    public async ValueTask DisposeAsync()
    {
        Stop();
        if (_writerLoop is not null)
        {
            await _writerLoop;
        }

        if (_commitLoop is not null)
        {
            await _commitLoop;
        }

        FailPending(new ObjectDisposedException($"container {_containerId}"), "The container is shutting down.");
        await _log.DisposeAsync();
        _stop.Dispose();
        _writeSignal.Dispose();
    }

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

                        if (_unwritten.Peek().Checkpoint?.Pages is { IsCompletedSuccessfully: false } unfinished)
                        {
                            serializing = unfinished; // a checkpoint's turn: nothing after it goes first
                        }
                        else
                        {
                            frame = _unwritten.Dequeue();
                            if (frame.Checkpoint is { } checkpoint)
                            {
                                pages = checkpoint.Pages.Result;
                                frame.Record = pages[0].Seal(_nextSequence++);
                                for (var i = 1; i < pages.Count; i++)
                                {
                                    _loggedBytes += pages[i].Seal(_nextSequence++).Length;
                                }
                            }
                            else
                            {
                                frame.Record = frame.Builder.Seal(_nextSequence++);
                            }

                            _writing++;
                            _loggedBytes += frame.Record.Length;
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
        var answers = new List<DurableAnswer>();
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

            lock (_sync)
            {
                if (_state == ContainerState.Failed || _abandoned)
                {
                    continue; // answered by FailPending
                }

                _pending.RemoveFirst();
                _applying = frame;
                _writing--;
                SignalCapacity();
            }

            _applier!.ApplyDurable(frame, address, answers, changed);
            long appendedBytes = 0, appendedBlocks = 0, appendedEvents = 0;
            foreach (var op in frame.Operations)
            {
                if (op.Type == OperationType.Append)
                {
                    appendedBytes += op.Length;
                    appendedBlocks++;
                    appendedEvents += op.EventCount;
                }
            }

            SegmentStoreMetrics.AppendedBytes.Add(appendedBytes);
            SegmentStoreMetrics.AppendedBlocks.Add(appendedBlocks);
            SegmentStoreMetrics.Appends.Add(appendedEvents);
            SegmentStoreMetrics.LogFrames.Add(1);
            SegmentStoreMetrics.LogWriteDuration.Record(Stopwatch.GetElapsedTime(frame.WriteStarted).TotalSeconds);
            _writeSignal.Release();
            foreach (var segment in changed)
            {
                segment.SignalChanged();
            }

            foreach (var answer in answers)
            {
                answer.Callback.OnCompleted(answer.Token, answer.Outcome);
            }

            answers.Clear();
            changed.Clear();
        }
    }

    /// <summary>Moves the current frame to the write queue (lock held).</summary>
    private void SealCurrent()
    {
        if (_current is { } current && !current.Builder.IsEmpty)
        {
            _unwritten.Enqueue(current);
            _current = null;
        }
    }

    /// <summary>Returns a frame with room for an operation body of <paramref name="bodyLength"/> bytes (lock held).</summary>
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

        _logger.LogError(error, "Container {Container} failed; its pending operations are answered with 'retry'.", _containerId);
        FailPending(error, $"Container {_containerId} failed: {error.Message}. Retry.");
        _failed.TrySetResult();
    }

    /// <summary>Answers every operation not yet applied with "unavailable" and drops their frames.</summary>
    private void FailPending(Exception error, string message)
    {
        List<PendingOperation> operations = [];
        lock (_sync)
        {
            _failure ??= error;
            foreach (var frame in _pending)
            {
                operations.AddRange(frame.Operations);
                if (frame.Checkpoint is { } checkpoint)
                {
                    operations.Add(new PendingOperation { Type = OperationType.Checkpoint, Callback = checkpoint.Completion });
                }

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

        _applier?.OnLogStopped();
    }
}
