using System.Collections.Concurrent;
using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.Fakes;

/// <summary>
/// A ReaderGroups service whose coordinator is the test: it answers every Join with Joined (a new session epoch, the
/// heartbeat interval the test set), hands out the messages the test queued with the next exchange, and records every
/// exchange. Groups are kept as created, for the management calls. Beyond the script it plays a few controller parts:
/// a checkpoint asks the readers and answers with the first acknowledgement's positions as the cuts; a reset or an
/// update fences every segment handed out and not given back, and assigns it again under the next owner epoch from
/// the cuts (or where it was first assigned); and <see cref="EndAfterCompleted"/> sends EndOfGroup once the named
/// segments are completed.
/// </summary>
public sealed class FakeReaderGroups : global::Streams.Contracts.Controller.ReaderGroups.ReaderGroupsBase
{
    private readonly object _lock = new();
    private readonly List<CoordinatorMessage> _queued = [];
    private readonly List<ReaderMessage> _received = [];
    private readonly List<FakeExchange> _exchanges = [];
    private readonly ConcurrentDictionary<string, ReaderGroupInfo> _groups = new(StringComparer.Ordinal);
    // Segments handed out and neither completed, released nor fenced since: what a reset takes back. Guarded by _lock.
    private readonly Dictionary<long, Assign> _assigned = [];
    private readonly Dictionary<string, TaskCompletionSource<CheckpointAck>> _checkpoints = new(StringComparer.Ordinal);
    private readonly List<CreateCheckpointRequest> _checkpointRequests = [];
    private readonly List<ResetReaderGroupRequest> _resets = [];
    private HashSet<long>? _endAfter;
    private long _sessions;
    private int _unavailable;

    /// <summary>The heartbeat interval Joined names.</summary>
    public int HeartbeatIntervalMs { get; set; } = 300;

    /// <summary>Every message readers sent, in order.</summary>
    public IReadOnlyList<ReaderMessage> Received
    {
        get
        {
            lock (_lock)
            {
                return [.. _received];
            }
        }
    }

    /// <summary>When each exchange arrived.</summary>
    public IReadOnlyList<DateTime> Exchanges
    {
        get
        {
            lock (_lock)
            {
                return [.. _exchanges.Select(e => e.At)];
            }
        }
    }

    /// <summary>Every exchange, in order.</summary>
    public IReadOnlyList<FakeExchange> ExchangeLog
    {
        get
        {
            lock (_lock)
            {
                return [.. _exchanges];
            }
        }
    }

    /// <summary>Every CreateCheckpoint request that got past <see cref="FailUnavailable"/>.</summary>
    public IReadOnlyList<CreateCheckpointRequest> CheckpointRequests
    {
        get
        {
            lock (_lock)
            {
                return [.. _checkpointRequests];
            }
        }
    }

    /// <summary>Every ResetReaderGroup request that got past <see cref="FailUnavailable"/>.</summary>
    public IReadOnlyList<ResetReaderGroupRequest> Resets
    {
        get
        {
            lock (_lock)
            {
                return [.. _resets];
            }
        }
    }

    /// <summary>Messages queued and not yet handed out.</summary>
    public int QueuedCount
    {
        get
        {
            lock (_lock)
            {
                return _queued.Count;
            }
        }
    }

    /// <summary>The next exchange hands these out.</summary>
    public void Queue(params CoordinatorMessage[] messages)
    {
        lock (_lock)
        {
            QueueLocked(messages);
        }
    }

    /// <summary>Once a SegmentCompleted of each of <paramref name="segmentIds"/> arrived, the reply to that exchange carries EndOfGroup.</summary>
    public void EndAfterCompleted(params long[] segmentIds)
    {
        lock (_lock)
        {
            _endAfter = [.. segmentIds];
        }
    }

    /// <summary>The next <paramref name="times"/> calls fail UNAVAILABLE, as from a controller that does not lead.</summary>
    public void FailUnavailable(int times) => Volatile.Write(ref _unavailable, times);

    public static CoordinatorMessage Assign(FakeSegment segment, long segmentId, long ownerEpoch, long start = 0, long end = -1) =>
        new() { Assign = new Assign { Scope = "test", Stream = "s", SegmentId = segmentId, Segment = segment.Name, OwnerEpoch = ownerEpoch, StartOffset = start, EndOffset = end } };

    public override Task<ReaderExchangeReply> ReaderExchange(ReaderExchangeRequest request, ServerCallContext context)
    {
        FailIfAsked();
        var reply = new ReaderExchangeReply();
        lock (_lock)
        {
            _received.AddRange(request.Messages);
            foreach (var message in request.Messages)
            {
                Observe(message);
            }

            if (request.Messages.Any(m => m.KindCase == ReaderMessage.KindOneofCase.Join))
            {
                reply.Messages.Add(new CoordinatorMessage { Joined = new Joined { SessionEpoch = ++_sessions, HeartbeatIntervalMs = HeartbeatIntervalMs, SessionTimeoutMs = 10 * HeartbeatIntervalMs } });
            }

            reply.Messages.AddRange(_queued);
            _queued.Clear();
            _exchanges.Add(new FakeExchange(DateTime.UtcNow, [.. request.Messages], [.. reply.Messages]));
        }

        return Task.FromResult(reply);
    }

    /// <summary>Keeps the fake's controller parts up to date with one reader message. Under the lock.</summary>
    private void Observe(ReaderMessage message)
    {
        switch (message.KindCase)
        {
            case ReaderMessage.KindOneofCase.Completed:
                Forget(message.Completed.Position.SegmentId, message.Completed.OwnerEpoch);
                if (_endAfter is not null && _endAfter.Remove(message.Completed.Position.SegmentId) && _endAfter.Count == 0)
                {
                    _endAfter = null;
                    _queued.Add(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
                }

                break;
            case ReaderMessage.KindOneofCase.Release:
                Forget(message.Release.Position.SegmentId, message.Release.OwnerEpoch);
                break;
            case ReaderMessage.KindOneofCase.CheckpointAck:
                if (_checkpoints.Remove(message.CheckpointAck.Name, out var waiting))
                {
                    waiting.TrySetResult(message.CheckpointAck);
                }

                break;
        }
    }

    private void Forget(long segmentId, long ownerEpoch)
    {
        if (_assigned.TryGetValue(segmentId, out var assign) && assign.OwnerEpoch == ownerEpoch)
        {
            _assigned.Remove(segmentId);
        }
    }

    private void QueueLocked(IEnumerable<CoordinatorMessage> messages)
    {
        foreach (var message in messages)
        {
            _queued.Add(message);
            switch (message.KindCase)
            {
                case CoordinatorMessage.KindOneofCase.Assign:
                    _assigned[message.Assign.SegmentId] = message.Assign;
                    break;
                case CoordinatorMessage.KindOneofCase.Fenced:
                    _assigned.Remove(message.Fenced.SegmentId);
                    break;
            }
        }
    }

    /// <summary>
    /// Restarts the group as the controller does on a reset or an update: a new generation; every segment handed out is
    /// fenced and assigned again under the next owner epoch, from its offset in <paramref name="cuts"/> when one names
    /// it, otherwise from where it was first assigned. Under the lock.
    /// </summary>
    private void Restart(ReaderGroupInfo info, IEnumerable<Contracts.Controller.StreamCut> cuts)
    {
        info.Generation++;
        var from = new Dictionary<long, long>();
        foreach (var cut in cuts)
        {
            foreach (var (segment, offset) in cut.Positions)
            {
                from[segment] = offset;
            }
        }

        foreach (var assign in _assigned.Values.ToList())
        {
            var again = assign.Clone();
            again.OwnerEpoch++;
            again.StartOffset = from.GetValueOrDefault(assign.SegmentId, assign.StartOffset);
            QueueLocked([new CoordinatorMessage { Fenced = new Fenced { SegmentId = assign.SegmentId, Reason = "the group restarts" } }, new CoordinatorMessage { Assign = again }]);
        }
    }

    private ReaderGroupInfo Group(string scope, string group) =>
        _groups.TryGetValue($"{scope}/{group}", out var info) ? info : throw new RpcException(new Status(StatusCode.NotFound, $"No reader group {scope}/{group}."));

    public override Task<ReaderGroupInfo> ResetReaderGroup(ResetReaderGroupRequest request, ServerCallContext context)
    {
        FailIfAsked();
        lock (_lock)
        {
            _resets.Add(request);
            var info = Group(request.Scope, request.Group);
            Restart(info, request.Cuts);
            return Task.FromResult(info.Clone());
        }
    }

    public override Task<ReaderGroupInfo> UpdateReaderGroup(UpdateReaderGroupRequest request, ServerCallContext context)
    {
        FailIfAsked();
        lock (_lock)
        {
            var info = Group(request.Scope, request.Group);
            info.Config = request.Config;
            Restart(info, request.Config.Streams.Where(s => s.Start is not null).Select(s => s.Start));
            return Task.FromResult(info.Clone());
        }
    }

    /// <summary>
    /// Asks the readers (with the next exchange) and answers once one acknowledged: a cut per stream of the group, of
    /// the acknowledged positions in it. DEADLINE_EXCEEDED after the request's timeout; an existing name returns that checkpoint.
    /// </summary>
    public override async Task<Checkpoint> CreateCheckpoint(CreateCheckpointRequest request, ServerCallContext context)
    {
        FailIfAsked();
        ReaderGroupInfo info;
        var acked = new TaskCompletionSource<CheckpointAck>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _checkpointRequests.Add(request);
            info = Group(request.Scope, request.Group);
            if (info.Checkpoints.FirstOrDefault(c => c.Name == request.Name) is { } existing)
            {
                return existing.Clone();
            }

            _checkpoints[request.Name] = acked;
            _queued.Add(new CoordinatorMessage { Checkpoint = new CheckpointRequest { Name = request.Name } });
        }

        var createdAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        CheckpointAck ack;
        try
        {
            ack = await acked.Task.WaitAsync(TimeSpan.FromMilliseconds(request.TimeoutMs > 0 ? request.TimeoutMs : 30000), context.CancellationToken);
        }
        catch (TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"Checkpoint {request.Name}: a reader did not answer in time."));
        }

        var checkpoint = new Checkpoint { Name = request.Name, Complete = true, CreatedAtUnixMs = createdAt };
        foreach (var stream in info.Config.Streams)
        {
            var cut = new Contracts.Controller.StreamCut { Scope = stream.Scope, Stream = stream.Stream };
            foreach (var position in ack.Positions.Where(p => p.Segment.StartsWith($"{stream.Scope}/{stream.Stream}/", StringComparison.Ordinal)))
            {
                cut.Positions[position.SegmentId] = position.Offset;
            }

            checkpoint.Cuts.Add(cut);
        }

        lock (_lock)
        {
            info.Checkpoints.Add(checkpoint);
            while (info.Checkpoints.Count > 10)
            {
                info.Checkpoints.RemoveAt(0);
            }
        }

        return checkpoint.Clone();
    }

    public override Task<CreateReaderGroupReply> CreateReaderGroup(CreateReaderGroupRequest request, ServerCallContext context)
    {
        FailIfAsked();
        var info = new ReaderGroupInfo { Scope = request.Scope, Group = request.Group, Config = request.Config, Generation = 1 };
        var created = _groups.TryAdd($"{request.Scope}/{request.Group}", info);
        return Task.FromResult(new CreateReaderGroupReply { Created = created, Info = _groups[$"{request.Scope}/{request.Group}"] });
    }

    public override Task<ReaderGroupInfo> DescribeReaderGroup(ReaderGroupRef request, ServerCallContext context)
    {
        FailIfAsked();
        lock (_lock)
        {
            return Task.FromResult(Group(request.Scope, request.Group).Clone());
        }
    }

    public override Task<DeleteReaderGroupReply> DeleteReaderGroup(ReaderGroupRef request, ServerCallContext context)
    {
        FailIfAsked();
        return Task.FromResult(new DeleteReaderGroupReply { Deleted = _groups.TryRemove($"{request.Scope}/{request.Group}", out _) });
    }

    public override Task<ReaderOfflineReply> ReaderOffline(ReaderOfflineRequest request, ServerCallContext context)
    {
        FailIfAsked();
        lock (_lock)
        {
            var known = _received.Any(m => m.KindCase == ReaderMessage.KindOneofCase.Join && m.Join.ReaderId == request.ReaderId && m.Join.Group == request.Group);
            return Task.FromResult(new ReaderOfflineReply { Removed = known });
        }
    }

    private void FailIfAsked()
    {
        if (Interlocked.Decrement(ref _unavailable) >= 0)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "not the leader"));
        }
    }
}
