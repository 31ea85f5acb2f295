using System.Buffers;
using Streams.Client.Internal;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Writing;

/// <summary>
/// Writes one segment for one <see cref="EventStreamWriter{T}"/>.
/// <para>
/// Events are framed into the open block; a send loop ships blocks in order, up to MaxInflightBlocks unacknowledged.
/// Each event gets the next event number; a block carries the number of its last event, and every event in a block
/// completes with the block's acknowledgement. After a broken connection (or a "retry" from the store) the loop
/// sets the writer up again, learns the last durable event number, completes the blocks at or below it, and re-sends
/// the rest in their original order and shape; the store drops any block it already has. Per-key order therefore
/// holds across reconnects, and no event is appended twice.
/// </para>
/// <para>
/// Numbering starts from what the store has seen. Nothing is sent before the first setup, which tells the last event
/// number the segment holds for this writer id (a stable id may have written before, in another process): events
/// numbered by the writer are then renumbered to follow it, so a restarted writer's events are never mistaken for
/// re-sends of its predecessor's. Events numbered by the application (its own sequence) at or below it are already
/// in the segment and complete without being sent again: that is what makes re-sends after a restart exactly-once.
/// </para>
/// </summary>
internal sealed class SegmentWriter : IAppendListener, IAsyncDisposable
{
    private readonly string _segment;
    private readonly Guid _writerId;
    private readonly WriterContext _context;
    private readonly EventWriterOptions _options;
    private readonly object _lock = new();
    private readonly Queue<Block> _ready = new();
    private readonly LinkedList<Block> _inflight = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _nextEventNumber;
    private bool _numbered;
    private long _firstSetupLast = -1;
    private Block? _open;
    private SegmentStoreConnection? _connection;
    private long _requestId;
    private bool _setUp;
    private TaskCompletionSource<long>? _setupReply;
    private Exception? _fatal;

    public SegmentWriter(string segment, Guid writerId, WriterContext context, EventWriterOptions options)
    {
        _segment = segment;
        _writerId = writerId;
        _context = context;
        _options = options;
        _loop = Task.Run(RunAsync);
    }

    public string Segment => _segment;

    /// <summary>
    /// Adds one event (with its routing key if <paramref name="storeKey"/>); the task completes when it is durable.
    /// <paramref name="sequence"/> is the application's own event number (increasing across the writer's events), or
    /// null to let the writer number events itself; a writer uses one way or the other, never both.
    /// </summary>
    public Task Append(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, bool storeKey, long? sequence = null)
    {
        var size = EventFraming.FrameSize(payload.Length, storeKey ? key.Length : -1);
        bool signal;
        Task completion;
        lock (_lock)
        {
            if (_fatal is { } fatal)
            {
                _context.Budget.Release(size);
                return Task.FromException(fatal);
            }

            if (sequence <= _firstSetupLast)
            {
                // The segment already holds this event of the application's: a re-send after a restart.
                _context.Budget.Release(size);
                return Task.CompletedTask;
            }

            if (_open is { } full && full.Bytes + size > _options.MaxBlockSize)
            {
                _ready.Enqueue(full);
                _open = null;
            }

            var open = _open ??= new Block(Math.Min(Math.Max(size, 16 * 1024), Math.Max(size, _options.MaxBlockSize)));
            if (sequence is { } applicationNumber && !_numbered)
            {
                // Until the first setup says which of them the segment has, remember where each event starts.
                (open.Sequences ??= []).Add((applicationNumber, open.Bytes));
            }

            EventFraming.Write(open.Buffer.GetSpan(size), payload, key, storeKey);
            open.Buffer.Advance(size);
            open.EventCount++;
            open.LastEventNumber = sequence ?? _nextEventNumber++;
            completion = open.Completion.Task;
            signal = open.EventCount == 1 || _ready.Count > 0;
        }

        if (signal)
        {
            _signal.Release();
        }

        return completion;
    }

    /// <summary>Sends everything buffered now and completes when all of it is durable (or failed).</summary>
    public Task FlushAsync()
    {
        List<Task> pending;
        lock (_lock)
        {
            if (_open is { EventCount: > 0 } open)
            {
                _ready.Enqueue(open);
                _open = null;
            }

            pending = [.. _ready.Select(b => b.Completion.Task), .. _inflight.Select(b => b.Completion.Task)];
        }

        _signal.Release();
        return Task.WhenAll(pending);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await FlushAsync();
        }
        catch (Exception)
        {
            // Failures were reported to the writes that waited on them.
        }

        await _stop.CancelAsync();
        await _loop;
        Fail(new ObjectDisposedException("The writer was closed."), fatal: true);
        if (_connection is { } connection)
        {
            connection.Unregister(_requestId);
        }

        _stop.Dispose();
    }

    // ---- Replies (on the connection's receive loop) -------------------------------------------------

    public void OnSetup(AppendSetup setup) => _setupReply?.TrySetResult(setup.LastEventNumber);

    public void OnAppended(DataAppended appended)
    {
        List<Block>? done = null;
        lock (_lock)
        {
            while (_inflight.First is { } first && first.Value.LastEventNumber <= appended.LastEventNumber)
            {
                _inflight.RemoveFirst();
                (done ??= []).Add(first.Value);
            }
        }

        if (done is not null)
        {
            foreach (var block in done)
            {
                Complete(block, null);
            }

            _signal.Release();
        }
    }

    public void OnRejected(AppendRejected rejected)
    {
        switch (rejected.Error)
        {
            case AppendError.SegmentSealed:
                Fail(new StreamSealedException($"Segment {_segment} is sealed: the stream accepts no more events."), fatal: true);
                break;
            case AppendError.NoSuchSegment:
                Fail(new StreamsException(StatusCode.NotFound, $"Segment {_segment} does not exist: {rejected.Message}"), fatal: true);
                break;
            case AppendError.InvalidBlock:
            case AppendError.ConditionFailed:
                FailBlock(rejected.LastEventNumber, new StreamsException(StatusCode.InvalidArgument, rejected.Message));
                break;
            default:
                // Retry / not set up: set up again and re-send what is unacknowledged.
                lock (_lock)
                {
                    _setUp = false;
                }

                _setupReply?.TrySetException(new RpcException(new Status(StatusCode.Unavailable, rejected.Message)));
                _signal.Release();
                break;
        }
    }

    public void OnDisconnected(Exception reason)
    {
        lock (_lock)
        {
            _setUp = false;
        }

        _setupReply?.TrySetException(reason);
        _signal.Release();
    }

    // ---- The send loop ------------------------------------------------------------------------------

    private async Task RunAsync()
    {
        var wait = Timeout.InfiniteTimeSpan;
        while (true)
        {
            try
            {
                await _signal.WaitAsync(wait, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            wait = Timeout.InfiniteTimeSpan;
            while (!_stop.IsCancellationRequested)
            {
                Block? block = null;
                bool needsSetup;
                SegmentStoreConnection? connection;
                long requestId;
                lock (_lock)
                {
                    if (_fatal is not null || !HasWork())
                    {
                        break;
                    }

                    needsSetup = !_setUp;
                    if (!needsSetup)
                    {
                        if (_inflight.Count >= _options.MaxInflightBlocks)
                        {
                            break;
                        }

                        block = NextBlockToSend(out wait);
                        if (block is null)
                        {
                            break;
                        }

                        _inflight.AddLast(block);
                    }

                    connection = _connection;
                    requestId = _requestId;
                }

                if (needsSetup)
                {
                    await SetupWithRetryAsync();
                    continue;
                }

                try
                {
                    await connection!.SendBlockAsync(new AppendBlockHeader(requestId, block!.LastEventNumber, block.EventCount, null), block.Data, _stop.Token);
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    // The block stays in flight; the next setup re-sends it.
                    lock (_lock)
                    {
                        _setUp = false;
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private bool HasWork() => _ready.Count > 0 || _open is { EventCount: > 0 } || (!_setUp && _inflight.Count > 0);

    /// <summary>The block to send now, or null and how long to wait (lock held).</summary>
    private Block? NextBlockToSend(out TimeSpan wait)
    {
        wait = Timeout.InfiniteTimeSpan;
        if (_ready.TryDequeue(out var ready))
        {
            return ready;
        }

        if (_open is not { EventCount: > 0 } open)
        {
            return null;
        }

        // Nothing in flight: send at once. Otherwise let the block fill until the linger expires.
        var age = TimeSpan.FromTicks(Environment.TickCount64 * TimeSpan.TicksPerMillisecond) - open.OpenedAt;
        if (_inflight.Count == 0 || age >= _options.Linger)
        {
            _open = null;
            return open;
        }

        wait = _options.Linger - age;
        return null;
    }

    /// <summary>Connects and sets up until it works, or fails everything pending once the reconnect timeout passes.</summary>
    private async Task SetupWithRetryAsync()
    {
        var deadline = DateTime.UtcNow + _context.ReconnectTimeout;
        var delay = TimeSpan.FromMilliseconds(50);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await SetupAsync();
                return;
            }
            catch (StreamsException e) when (e.StatusCode == StatusCode.NotFound)
            {
                Fail(e, fatal: true);
                return;
            }
            catch (EndpointWatch.MovedException)
            {
                // The controller names another store now: go there without a back-off.
                delay = TimeSpan.FromMilliseconds(50);
            }
            catch (Exception e) when (!_stop.IsCancellationRequested)
            {
                if (DateTime.UtcNow >= deadline)
                {
                    Fail(new StreamsException(StatusCode.Unavailable, $"Could not reach the segment store for {_segment} within {_context.ReconnectTimeout}: {e.Message}", e), fatal: false);
                    return;
                }

                try
                {
                    await Task.Delay(delay, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    private async Task SetupAsync()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var endpoint = await _context.Controller.GetEndpointAsync(_segment, timeout.Token);
        using var watch = EndpointWatch.Start(_context.Controller, _segment, endpoint, timeout.Token);
        try
        {
            await SetupAtAsync(endpoint, watch.Token, timeout.Token);
        }
        catch (OperationCanceledException) when (watch.HasMoved)
        {
            throw new EndpointWatch.MovedException();
        }
    }

    /// <summary>
    /// Sets up at <paramref name="endpoint"/>: waits for the connection and the setup answer until <paramref name="waiting"/>
    /// is cancelled (the segment moved, or the setup timed out), then re-sends what is in flight.
    /// </summary>
    private async Task SetupAtAsync(SegmentEndpoint endpoint, CancellationToken waiting, CancellationToken timeout)
    {
        var connection = await _context.Pool.GetAsync(endpoint, waiting);
        var reply = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        long requestId;
        lock (_lock)
        {
            _connection?.Unregister(_requestId);
            _connection = connection;
            _requestId = requestId = connection.NextRequestId();
            _setupReply = reply;
        }

        connection.Register(requestId, this);
        await connection.SendSetupAsync(requestId, _writerId, _segment, waiting);
        var lastDurable = await reply.Task.WaitAsync(waiting);

        List<Block> acknowledged = [];
        List<Block> resend;
        lock (_lock)
        {
            if (!_numbered)
            {
                acknowledged.AddRange(Renumber(lastDurable));
            }

            while (_inflight.First is { } first && first.Value.LastEventNumber <= lastDurable)
            {
                _inflight.RemoveFirst();
                acknowledged.Add(first.Value);
            }

            resend = [.. _inflight];
        }

        foreach (var block in acknowledged)
        {
            Complete(block, null);
        }

        foreach (var block in resend)
        {
            await connection.SendBlockAsync(new AppendBlockHeader(requestId, block.LastEventNumber, block.EventCount, null), block.Data, timeout);
        }

        lock (_lock)
        {
            if (_requestId == requestId && !connection.IsClosed)
            {
                _setUp = true;
            }
        }
    }

    /// <summary>
    /// After the first setup (lock held; nothing was sent yet): the writer's own numbers move up to follow
    /// <paramref name="lastDurable"/>, and the application's events at or below it are cut from their blocks. Returns
    /// the blocks left with nothing to send: they complete at once.
    /// </summary>
    private List<Block> Renumber(long lastDurable)
    {
        _numbered = true;
        _firstSetupLast = lastDurable;
        var first = _ready.Count > 0 ? _ready.Peek() : _open is { EventCount: > 0 } open ? open : null;
        var done = new List<Block>();
        if (first?.Sequences is null)
        {
            // Numbered by the writer from 0: shift every pending number past the segment's record.
            var shift = Math.Max(0, lastDurable + 1 - (first is null ? _nextEventNumber : first.LastEventNumber - first.EventCount + 1));
            _nextEventNumber += shift;
            foreach (var block in _ready)
            {
                block.LastEventNumber += shift;
            }

            if (_open is not null)
            {
                _open.LastEventNumber += shift;
            }

            return done;
        }

        var kept = new List<Block>(_ready.Count);
        foreach (var block in _ready)
        {
            (TrimDuplicates(block, lastDurable) ? kept : done).Add(block);
        }

        _ready.Clear();
        kept.ForEach(_ready.Enqueue);
        if (_open is { EventCount: > 0 } last && !TrimDuplicates(last, lastDurable))
        {
            done.Add(last);
            _open = null;
        }

        return done;
    }

    /// <summary>Cuts the application's events at or below <paramref name="lastDurable"/> from a block; false if none is left.</summary>
    private bool TrimDuplicates(Block block, long lastDurable)
    {
        var sequences = block.Sequences!;
        block.Sequences = null;
        var keep = sequences.FindIndex(e => e.Sequence > lastDurable);
        if (keep > 0)
        {
            _context.Budget.Release(block.CutPrefix(sequences[keep].Start, block.EventCount - keep));
        }

        return keep >= 0;
    }

    private void Fail(Exception error, bool fatal)
    {
        List<Block> failed;
        lock (_lock)
        {
            if (fatal)
            {
                _fatal ??= error;
            }

            failed = [.. _inflight, .. _ready];
            if (_open is { } open)
            {
                failed.Add(open);
                _open = null;
            }

            _inflight.Clear();
            _ready.Clear();
        }

        foreach (var block in failed)
        {
            Complete(block, error);
        }
    }

    private void FailBlock(long lastEventNumber, Exception error)
    {
        Block? failed = null;
        lock (_lock)
        {
            for (var node = _inflight.First; node is not null; node = node.Next)
            {
                if (node.Value.LastEventNumber == lastEventNumber)
                {
                    failed = node.Value;
                    _inflight.Remove(node);
                    break;
                }
            }
        }

        if (failed is not null)
        {
            Complete(failed, error);
            _signal.Release();
        }
    }

    private void Complete(Block block, Exception? error)
    {
        _context.Budget.Release(block.Bytes);
        if (error is null)
        {
            block.Completion.TrySetResult();
            // Acknowledged, so fully sent: the buffer can go back to the pool.
            block.Buffer.Dispose();
        }
        else
        {
            // A failed block may still be in the middle of a send: leave its buffer to the GC.
            block.Completion.TrySetException(error);
        }
    }

    /// <summary>A block of framed events; all of them complete together.</summary>
    private sealed class Block(int capacity)
    {
        public PooledBuffer Buffer { get; private set; } = new(capacity);

        /// <summary>Application sequences and start offsets of the events, kept only until the first setup.</summary>
        public List<(long Sequence, int Start)>? Sequences { get; set; }

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TimeSpan OpenedAt { get; } = TimeSpan.FromTicks(Environment.TickCount64 * TimeSpan.TicksPerMillisecond);

        public int EventCount { get; set; }

        public long LastEventNumber { get; set; }

        public int Bytes => Buffer.WrittenCount;

        public ReadOnlySequence<byte> Data => new(Buffer.WrittenMemory);

        /// <summary>Drops the events before byte <paramref name="start"/>, keeping <paramref name="eventCount"/>; returns the bytes dropped.</summary>
        public int CutPrefix(int start, int eventCount)
        {
            var rest = new PooledBuffer(Bytes - start);
            Buffer.WrittenSpan[start..].CopyTo(rest.GetSpan(Bytes - start));
            rest.Advance(Bytes - start);
            Buffer.Dispose();
            Buffer = rest;
            EventCount = eventCount;
            return start;
        }
    }
}
