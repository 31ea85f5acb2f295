using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.Controller;

namespace Streams.Client.Writing;

/// <summary>
/// The routing table of one <see cref="EventStreamWriter{T}"/>: which segment writer takes which part of the key
/// space, and how the table follows a scale.
/// <para>
/// Why it is safe (per-key order, exactly-once): when a segment writer finds its segment sealed, its key ranges are
/// <em>held</em> first, then it is drained. A write that finds a held range waits in that range's queue; a write that
/// raced ahead into the sealed writer is drained with the rest. The stream writer asks the controller for the
/// successors (retrying while the new epoch is not active yet), drains as well every other segment of ours that
/// the successors replace (a merge), and appends the drained events to the successors in their original order
/// (merged by the application's sequence when it numbers them, so that a successor never sees a sequence below
/// one it already took), then the waiting writes in their order, and only then publishes the new table. Moves
/// run one at a time. The successors inherited our writer records, so an event that was in fact durable in the
/// sealed segment is recognised by the successor and not stored twice.
/// </para>
/// <para>
/// The bytes of a moved event stay taken from the writer's budget until the successor acknowledges (or drops) it,
/// so the budget stays exact. A stream that turns out sealed fails the moved and waiting events with
/// <see cref="StreamSealedException"/>, and every later write to those ranges at once.
/// </para>
/// </summary>
internal sealed class SegmentRouter : IAsyncDisposable
{
    /// <summary>Flushes look again after a move that ran meanwhile, at most this many times.</summary>
    private const int FlushRounds = 8;

    private readonly string _scope;
    private readonly string _stream;
    private readonly Guid _writerId;
    private readonly WriterContext _context;
    private readonly EventWriterOptions _options;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _moves = new(1, 1);
    private readonly Dictionary<long, SegmentWriter> _live = [];
    private readonly List<SegmentWriter> _retired = [];
    private volatile RouteTable _table;
    private int _moveCount;

    public SegmentRouter(string scope, string stream, Guid writerId, IReadOnlyList<SegmentRange> segments, WriterContext context, EventWriterOptions options)
    {
        _scope = scope;
        _stream = stream;
        _writerId = writerId;
        _context = context;
        _options = options;
        var routes = new List<Route>();
        foreach (var segment in segments.OrderBy(s => s.KeyStart))
        {
            routes.Add(new Route(segment.KeyStart, segment.KeyEnd, WriterFor(segment)));
        }

        _table = new RouteTable([.. routes]);
    }

    /// <summary>
    /// For tests: called during a move with the router's lock held, after the moved events are in the successors and
    /// before the writes that waited for the move are.
    /// </summary>
    internal Action? ReroutedForTests { get; set; }

    /// <summary>The segments written now, for tests.</summary>
    internal IReadOnlyList<string> Segments => [.. _table.Routes.Select(r => r.Writer.Segment).Distinct()];

    /// <summary>
    /// Appends one event to the segment that owns <paramref name="point"/>; the task completes when it is durable.
    /// The caller has taken its bytes from the budget.
    /// </summary>
    public Task Append(ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, bool storeKey, double point, bool hasKey, long? sequence)
    {
        var route = _table.Find(point);
        if (route.Held is null && route.Failed is null && route.Writer.TryAppend(payload, key, storeKey, point, hasKey, sequence, out var completion))
        {
            return completion;
        }

        // The range is moving (or moved): frame the event once and queue it behind the move.
        var frame = new byte[EventFraming.FrameSize(payload.Length, storeKey ? key.Length : -1)];
        EventFraming.Write(frame, payload, key, storeKey);
        lock (_lock)
        {
            return AppendLocked(new Waiting(frame, point, hasKey, sequence));
        }
    }

    /// <summary>Sends everything buffered and completes when all of it is durable, moves included.</summary>
    public async Task FlushAsync()
    {
        for (var round = 0; round < FlushRounds; round++)
        {
            var moves = Volatile.Read(ref _moveCount);
            await _moves.WaitAsync();
            _moves.Release();
            SegmentWriter[] live;
            lock (_lock)
            {
                live = [.. _live.Values];
            }

            await Task.WhenAll(live.Select(w => w.FlushAsync()));
            if (Volatile.Read(ref _moveCount) == moves)
            {
                return;
            }
        }
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

        await _moves.WaitAsync();
        SegmentWriter[] all;
        lock (_lock)
        {
            all = [.. _live.Values, .. _retired];
            _live.Clear();
            _retired.Clear();
        }

        foreach (var writer in all)
        {
            await writer.DisposeAsync();
        }

        // A move still waiting finds no live writer and ends.
        _moves.Release();
    }

    private SegmentWriter WriterFor(SegmentRange segment)
    {
        if (!_live.TryGetValue(segment.SegmentId, out var writer))
        {
            writer = new SegmentWriter(segment, _writerId, _context, _options, OnSealed);
            _live[segment.SegmentId] = writer;
        }

        return writer;
    }

    /// <summary>Queues or appends an event whose range was moving (lock held), by <paramref name="table"/> (default: the published one).</summary>
    private Task AppendLocked(Waiting waiting, RouteTable? table = null)
    {
        var route = (table ?? _table).Find(waiting.Point);
        if (route.Failed is { } failed)
        {
            _context.Budget.Release(waiting.Frame.Length);
            return Task.FromException(failed);
        }

        if (route.Held is { } held)
        {
            held.Enqueue(waiting);
            return waiting.Done.Task;
        }

        if (route.Writer.TryAppendFramed(waiting.Frame, waiting.Point, waiting.HasKey, waiting.Sequence, out var completion))
        {
            return completion;
        }

        // A writer is drained only after its ranges are held, and its ranges leave the table under this lock.
        _context.Budget.Release(waiting.Frame.Length);
        return Task.FromException(new InvalidOperationException($"Segment {route.Writer.Segment} was drained while its key range was not held."));
    }

    /// <summary>Called by a segment writer (on a receive loop, so it must not block) when its segment is sealed.</summary>
    private void OnSealed(SegmentWriter writer) => _ = Task.Run(() => MoveAsync(writer));

    private async Task MoveAsync(SegmentWriter sealedWriter)
    {
        await _moves.WaitAsync();
        try
        {
            lock (_lock)
            {
                if (!_live.ContainsValue(sealedWriter))
                {
                    // Moved already, with a sibling it merged with.
                    return;
                }

                Hold(sealedWriter);
            }

            List<SegmentWriter> moving = [sealedWriter];
            List<Task<List<EventBlock>>> drains = [sealedWriter.DrainAsync()];
            var successors = new Dictionary<long, SegmentRange>();
            for (var i = 0; i < moving.Count; i++)
            {
                SuccessorsReply reply;
                try
                {
                    reply = await SuccessorsAsync(moving[i].Segment);
                }
                catch (Exception e)
                {
                    await FailAsync(moving, drains, e);
                    return;
                }

                if (reply.Successors.Count == 0)
                {
                    await FailAsync(moving, drains, new StreamSealedException($"Stream {_scope}/{_stream} is sealed: it accepts no more events (segment {moving[i].Segment})."));
                    return;
                }

                lock (_lock)
                {
                    foreach (var successor in reply.Successors)
                    {
                        successors[successor.Segment.SegmentId] = successor.Segment;

                        // Our other segments that a successor replaces (a merge): drained too, so that the successor
                        // gets the events of all of them at once; their own successors join the move.
                        foreach (var id in successor.PredecessorIds)
                        {
                            if (_live.TryGetValue(id, out var sibling) && !moving.Contains(sibling))
                            {
                                Hold(sibling);
                                moving.Add(sibling);
                                drains.Add(sibling.DrainAsync());
                            }
                        }
                    }
                }
            }

            List<EventBlock>[] drained;
            try
            {
                drained = await Task.WhenAll(drains);
            }
            catch (Exception e)
            {
                await FailAsync(moving, drains, e);
                return;
            }

            Reroute(moving, drained, [.. successors.Values.OrderBy(s => s.KeyStart)]);
        }
        finally
        {
            Interlocked.Increment(ref _moveCount);
            _moves.Release();
        }
    }

    /// <summary>Marks every range of <paramref name="writer"/> held (lock held): writes to them queue from now on.</summary>
    private void Hold(SegmentWriter writer)
    {
        foreach (var route in _table.Routes)
        {
            if (route.Writer == writer)
            {
                route.Held ??= new Queue<Waiting>();
            }
        }
    }

    /// <summary>
    /// Installs the successors in place of <paramref name="moving"/>, appends the drained events to them in order, then
    /// the writes that waited, and publishes the new table; all under the lock, so no write can pass them.
    /// </summary>
    private void Reroute(List<SegmentWriter> moving, List<EventBlock>[] drained, List<SegmentRange> successors)
    {
        var events = Ordered(drained);
        var links = new Dictionary<EventBlock, List<Task>>();
        lock (_lock)
        {
            var next = new List<Route>();
            var queued = new List<Waiting>();
            foreach (var route in _table.Routes)
            {
                if (!moving.Contains(route.Writer))
                {
                    next.Add(route);
                    continue;
                }

                queued.AddRange(route.Held ?? []);
                foreach (var successor in successors)
                {
                    var start = Math.Max(route.Start, successor.KeyStart);
                    var end = Math.Min(route.End, successor.KeyEnd);
                    if (start < end)
                    {
                        next.Add(new Route(start, end, WriterFor(successor)));
                    }
                }
            }

            foreach (var writer in moving)
            {
                _live.Remove(writer.SegmentId);
                _retired.Add(writer);
            }

            // The new table is published only after the moved and waiting events are in the successors: a write on the
            // lock-free path that found it earlier would pass them (per-key order broken across the scale).
            var table = new RouteTable([.. next.OrderBy(r => r.Start)]);
            foreach (var (block, index) in events)
            {
                var meta = block[index];
                long? sequence = meta.Sequence < 0 ? null : meta.Sequence;
                var route = table.Find(meta.Point);
                if (route.Failed is not null || !route.Writer.TryAppendFramed(block.FrameOf(index), meta.Point, meta.HasKey, sequence, out var task))
                {
                    task = AppendLocked(new Waiting(block.FrameOf(index).ToArray(), meta.Point, meta.HasKey, sequence), table);
                }

                var tasks = links.TryGetValue(block, out var list) ? list : links[block] = [];
                if (tasks.Count == 0 || tasks[^1] != task)
                {
                    tasks.Add(task);
                }
            }

            ReroutedForTests?.Invoke();
            foreach (var waiting in queued)
            {
                var task = AppendLocked(waiting, table);
                _ = task.ContinueWith(static (t, w) => Settle(((Waiting)w!).Done, t), waiting, TaskScheduler.Default);
            }

            _table = table;
        }

        foreach (var (block, tasks) in links)
        {
            // The block's bytes now belong to the successors' blocks, which give them back to the budget.
            block.Release();
            _ = Task.WhenAll(tasks).ContinueWith(static (t, b) => Settle(((EventBlock)b!).Completion, t), block, TaskScheduler.Default);
        }
    }

    /// <summary>
    /// The drained events in the order they go to the successors: each segment's in order; across segments by the
    /// application's sequence if it numbers them (a successor drops a sequence below one it already has).
    /// </summary>
    private static List<(EventBlock Block, int Index)> Ordered(List<EventBlock>[] drained)
    {
        var events = new List<(EventBlock Block, int Index)>();
        foreach (var blocks in drained)
        {
            foreach (var block in blocks)
            {
                for (var i = 0; i < block.EventCount; i++)
                {
                    events.Add((block, i));
                }
            }
        }

        if (drained.Length > 1 && events.Count > 0 && events[0].Block[events[0].Index].Sequence >= 0)
        {
            // A stable sort: the lists are sorted already.
            events = [.. events.OrderBy(e => e.Block[e.Index].Sequence)];
        }

        return events;
    }

    /// <summary>Fails the moving writers' drained and waiting events with <paramref name="error"/>, and later writes to their ranges.</summary>
    private async Task FailAsync(List<SegmentWriter> moving, List<Task<List<EventBlock>>> drains, Exception error)
    {
        var failed = new List<Waiting>();
        lock (_lock)
        {
            foreach (var route in _table.Routes)
            {
                if (moving.Contains(route.Writer))
                {
                    route.Failed = error;
                    failed.AddRange(route.Held ?? []);
                    route.Held = null;
                }
            }

            foreach (var writer in moving)
            {
                _live.Remove(writer.SegmentId);
                _retired.Add(writer);
            }
        }

        foreach (var waiting in failed)
        {
            _context.Budget.Release(waiting.Frame.Length);
            waiting.Done.TrySetException(error);
        }

        foreach (var drain in drains)
        {
            List<EventBlock> blocks;
            try
            {
                blocks = await drain;
            }
            catch (Exception)
            {
                // The segment writer failed its blocks itself.
                continue;
            }

            foreach (var block in blocks)
            {
                _context.Budget.Release(block.Bytes);
                block.Completion.TrySetException(error);
                block.Release();
            }
        }
    }

    /// <summary>
    /// The successors of a sealed segment. While the controller names none and the stream is not sealed, the new epoch
    /// is not active yet: ask again with back-off, for at most the reconnect timeout. A controller that does not know
    /// GetSuccessors cannot scale, so there a sealed segment means a sealed stream.
    /// </summary>
    private async Task<SuccessorsReply> SuccessorsAsync(string segment)
    {
        var deadline = DateTime.UtcNow + _context.ReconnectTimeout;
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            SuccessorsReply reply;
            try
            {
                reply = await _context.Controller.GetSuccessorsAsync(segment, CancellationToken.None);
            }
            catch (StreamsException e) when (e.StatusCode == StatusCode.Unimplemented)
            {
                return new SuccessorsReply { State = StreamState.Sealed };
            }
            catch (StreamsException e) when (Transient(e.StatusCode) && DateTime.UtcNow < deadline)
            {
                // The controllers failed over or were slow (the client already tried each of them): the scale goes on
                // without us, so ask again rather than fail every event the sealed segment held.
                reply = new SuccessorsReply { State = StreamState.Active };
            }

            if (reply.Successors.Count > 0 || reply.State == StreamState.Sealed)
            {
                return reply;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new StreamsException(StatusCode.Unavailable, $"Segment {segment} is sealed, but the controller named no successors within {_context.ReconnectTimeout}: the scale did not complete.");
            }

            await Task.Delay(delay);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
        }
    }

    /// <summary>Failures that a later call may not meet: the controller unreachable, slow, or briefly in trouble.</summary>
    private static bool Transient(StatusCode code) =>
        code is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Aborted or StatusCode.ResourceExhausted or StatusCode.Internal or StatusCode.Unknown;

    private static void Settle(TaskCompletionSource completion, Task outcome)
    {
        if (outcome.IsFaulted)
        {
            completion.TrySetException(outcome.Exception!.InnerExceptions);
        }
        else if (outcome.IsCanceled)
        {
            completion.TrySetCanceled();
        }
        else
        {
            completion.TrySetResult();
        }
    }

    /// <summary>A part [Start, End) of the key space and the writer that takes it. Held and Failed change under the lock.</summary>
    private sealed class Route(double start, double end, SegmentWriter writer)
    {
        public double Start { get; } = start;

        public double End { get; } = end;

        public SegmentWriter Writer { get; } = writer;

        /// <summary>Writes waiting for a move of this range, in order; null when the range is not moving.</summary>
        public Queue<Waiting>? Held { get; set; }

        /// <summary>Set when the range cannot be written any more (the stream is sealed).</summary>
        public Exception? Failed { get; set; }
    }

    /// <summary>The routes, sorted by start, tiling [0, 1); replaced whole, never changed in place.</summary>
    private sealed class RouteTable(Route[] routes)
    {
        private readonly double[] _starts = [.. routes.Select(r => r.Start)];

        public Route[] Routes { get; } = routes;

        public Route Find(double point)
        {
            var index = Array.BinarySearch(_starts, point);
            return Routes[Math.Max(0, index >= 0 ? index : (~index) - 1)];
        }
    }

    /// <summary>An event framed and waiting for a move; its bytes are taken from the budget.</summary>
    private sealed class Waiting(byte[] frame, double point, bool hasKey, long? sequence)
    {
        public byte[] Frame { get; } = frame;

        public double Point { get; } = point;

        public bool HasKey { get; } = hasKey;

        public long? Sequence { get; } = sequence;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
