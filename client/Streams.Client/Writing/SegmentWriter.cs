using System.Numerics;
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
/// The same holds for the ranges a successor segment inherited from its predecessors (AppendSetup.inherited): an
/// application's event whose key falls in one, with a sequence at or below its last, is already in the stream.
/// </para>
/// <para>
/// A sealed segment (SEGMENT_SEALED, or a setup answered sealed) takes nothing more. The writer stops sending, tells
/// its <see cref="EventStreamWriter{T}"/>, and when asked to drain sets up once more to learn the final last event
/// number: the blocks at or below it complete, and every block above it (sent or not, in order) is handed back to the
/// stream writer, which moves its events to the successors. From then on <see cref="TryAppend"/> refuses, so a write
/// that raced with the seal is routed again.
/// </para>
/// </summary>
internal sealed partial class SegmentWriter : IAppendListener, IAsyncDisposable
{
    private readonly string _segment;
    private readonly double _keyStart;
    private readonly double _keyEnd;
    private readonly Action<SegmentWriter> _onSealed;
    private readonly Guid _writerId;
    private readonly WriterContext _context;
    private readonly EventWriterOptions _options;
    private readonly object _lock = new();
    private readonly Queue<EventBlock> _ready = new();
    private readonly LinkedList<EventBlock> _inflight = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    /// <summary>
    /// The first buffer of a block is between these: it grows by doubling as events arrive, and each segment remembers
    /// the size its last block reached.
    /// </summary>
    private const int MinBlockCapacity = 256;

    private const int MaxBlockCapacity = 16 * 1024;

    private int _blockCapacity = MaxBlockCapacity;
    private long _nextEventNumber;
    private bool _numbered;
    private long _firstSetupLast = -1;
    private InheritedWriterRange[] _inherited = [];
    private EventBlock? _open;
    private SegmentStoreConnection? _connection;
    private long _requestId;
    private bool _setUp;
    private TaskCompletionSource<AppendSetup>? _setupReply;
    private Exception? _fatal;
    private bool _sealed;
    private bool _moved;
    private TaskCompletionSource<List<EventBlock>>? _drain;

    public SegmentWriter(SegmentRange range, Guid writerId, WriterContext context, EventWriterOptions options, Action<SegmentWriter> onSealed)
    {
        _segment = range.Segment;
        SegmentId = range.SegmentId;
        _keyStart = range.KeyStart;
        _keyEnd = range.KeyEnd;
        _onSealed = onSealed;
        _writerId = writerId;
        _context = context;
        _options = options;
        _loop = Task.Run(RunAsync);
    }

    public string Segment => _segment;

    /// <summary>(epoch &lt;&lt; 32) | number.</summary>
    public long SegmentId { get; }

    /// <summary>
    /// Adds one event (with its routing key if <paramref name="storeKey"/>); <paramref name="completion"/> completes
    /// when it is durable. <paramref name="point"/> is the key-space point that routed it (<paramref name="hasKey"/>
    /// false: a random one). <paramref name="sequence"/> is the application's own event number (increasing across
    /// the writer's events), or null to let the writer number events itself; a writer uses one way or the other.
    /// Returns false, taking nothing, once the segment is sealed and drained: route the event again.
    /// The caller has taken the event's bytes from the budget; they are released when the event completes.
    /// </summary>
    public bool TryAppend(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, bool storeKey, double point, bool hasKey, long? sequence, out Task completion) =>
        TryAppendCore(payload, key, storeKey, default, point, hasKey, sequence, out completion);

    /// <summary>As <see cref="TryAppend"/>, for an event already framed (moved from a sealed segment).</summary>
    public bool TryAppendFramed(ReadOnlySpan<byte> frame, double point, bool hasKey, long? sequence, out Task completion) =>
        TryAppendCore(default, default, false, frame, point, hasKey, sequence, out completion);

    private bool TryAppendCore(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, bool storeKey, ReadOnlySpan<byte> frame, double point, bool hasKey, long? sequence, out Task completion)
    {
        var size = frame.IsEmpty ? EventFraming.FrameSize(payload.Length, storeKey ? key.Length : -1) : frame.Length;
        bool signal;
        lock (_lock)
        {
            if (_moved)
            {
                completion = Task.CompletedTask;
                return false;
            }

            if (_fatal is { } fatal)
            {
                _context.Budget.Release(size);
                completion = Task.FromException(fatal);
                return true;
            }

            if (sequence is { } known && _numbered && AlreadyStored(point, known))
            {
                // The stream already holds this event of the application's: a re-send after a restart or a seal.
                _context.Budget.Release(size);
                completion = Task.CompletedTask;
                return true;
            }

            if (_open is { } full && full.Bytes + size > _options.MaxBlockSize)
            {
                _ready.Enqueue(full);
                _open = null;
                _blockCapacity = MaxBlockCapacity;
            }

            var open = _open ??= new EventBlock(Math.Min(Math.Max(size, _blockCapacity), Math.Max(size, _options.MaxBlockSize)));
            if (frame.IsEmpty)
            {
                EventFraming.Write(open.Buffer.GetSpan(size), payload, key, storeKey);
                open.Record(size, point, hasKey, sequence ?? -1);
            }
            else
            {
                open.Add(frame, point, hasKey, sequence ?? -1);
            }

            open.LastEventNumber = sequence ?? _nextEventNumber++;
            completion = open.Completion.Task;
            signal = !_sealed && (open.EventCount == 1 || _ready.Count > 0);
        }

        if (signal)
        {
            _signal.Release();
        }

        return true;
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

    public void OnSetup(AppendSetup setup) => _setupReply?.TrySetResult(setup);

    public void OnAppended(DataAppended appended)
    {
        List<EventBlock>? done = null;
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
                MarkSealed();
                break;
            case AppendError.NoSuchSegment:
                Fail(new StreamsException(StatusCode.NotFound, $"Segment {_segment} does not exist: {rejected.Message}"), fatal: true);
                break;
            case AppendError.InvalidBlock when rejected.LastEventNumber < 0:
                // The setup itself was refused (a malformed writer id, a container at its limit of transaction segments):
                // nothing will get through, so everything pending fails now rather than after the setup's timeout.
                Fail(new StreamsException(StatusCode.InvalidArgument, $"Setting up {_segment} was refused: {rejected.Message}"), fatal: true);
                _setupReply?.TrySetException(new StreamsException(StatusCode.InvalidArgument, rejected.Message));
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
                EventBlock? block = null;
                var needsSetup = false;
                SegmentStoreConnection? connection;
                long requestId;
                TaskCompletionSource<List<EventBlock>>? drain;
                lock (_lock)
                {
                    drain = _drain;
                    if (drain is null)
                    {
                        if (_sealed || _fatal is not null || !HasWork())
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
                    }

                    connection = _connection;
                    requestId = _requestId;
                }

                if (drain is not null)
                {
                    await DrainCoreAsync(drain);
                    return;
                }

                if (needsSetup)
                {
                    await SetupWithRetryAsync();
                    continue;
                }

                try
                {
                    await connection!.SendBlockAsync(HeaderOf(requestId, block!), block!.Data, _stop.Token);
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    // The block stays in flight; the next setup re-sends it.
                    lock (_lock)
                    {
                        _setUp = false;
                    }
                }
                catch (Exception)
                {
                    // Closing: a send cut short by the stop (on gRPC an IOException, the call is cancelled) ends the loop.
                    return;
                }
            }
        }
    }

    private AppendBlockHeader HeaderOf(long requestId, EventBlock block) =>
        new(requestId, block.LastEventNumber, block.EventCount, null, block.KeySample(_keyStart, _keyEnd));

    private bool HasWork() => _ready.Count > 0 || _open is { EventCount: > 0 } || (!_setUp && _inflight.Count > 0);

    /// <summary>The block to send now, or null and how long to wait (lock held).</summary>
    private EventBlock? NextBlockToSend(out TimeSpan wait)
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
            // The next block starts at the size this one reached: a segment that gets an event or two per block (one
            // of 1,000) keeps small buffers instead of 16 KiB ones it never fills.
            _blockCapacity = Math.Clamp((int)BitOperations.RoundUpToPowerOf2((uint)open.Bytes), MinBlockCapacity, MaxBlockCapacity);
            return open;
        }

        wait = _options.Linger - age;
        return null;
    }

    private void Fail(Exception error, bool fatal)
    {
        List<EventBlock> failed;
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
        EventBlock? failed = null;
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

    private void Complete(EventBlock block, Exception? error)
    {
        _context.Budget.Release(block.Bytes);
        if (error is null)
        {
            block.Completion.TrySetResult();
            // Acknowledged, so fully sent: the buffers can go back to their pools.
            block.Release();
        }
        else
        {
            // A failed block may still be in the middle of a send: leave its buffer to the GC.
            block.Completion.TrySetException(error);
        }
    }
}
