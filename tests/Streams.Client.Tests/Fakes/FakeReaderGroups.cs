using System.Collections.Concurrent;
using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.Fakes;

/// <summary>
/// A ReaderGroups service whose coordinator is the test: it answers every Join with Joined (a new session epoch, the
/// heartbeat interval the test set), hands out the messages the test queued with the next exchange, and records every
/// reader message and the time of every exchange. Groups are kept as created, for the management calls.
/// </summary>
public sealed class FakeReaderGroups : global::Streams.Contracts.Controller.ReaderGroups.ReaderGroupsBase
{
    private readonly object _lock = new();
    private readonly List<CoordinatorMessage> _queued = [];
    private readonly List<ReaderMessage> _received = [];
    private readonly List<DateTime> _exchanges = [];
    private readonly ConcurrentDictionary<string, ReaderGroupInfo> _groups = new(StringComparer.Ordinal);
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
                return [.. _exchanges];
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
            _queued.AddRange(messages);
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
            _exchanges.Add(DateTime.UtcNow);
            _received.AddRange(request.Messages);
            if (request.Messages.Any(m => m.KindCase == ReaderMessage.KindOneofCase.Join))
            {
                reply.Messages.Add(new CoordinatorMessage { Joined = new Joined { SessionEpoch = ++_sessions, HeartbeatIntervalMs = HeartbeatIntervalMs, SessionTimeoutMs = 10 * HeartbeatIntervalMs } });
            }

            reply.Messages.AddRange(_queued);
            _queued.Clear();
        }

        return Task.FromResult(reply);
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
        return _groups.TryGetValue($"{request.Scope}/{request.Group}", out var info)
            ? Task.FromResult(info)
            : throw new RpcException(new Status(StatusCode.NotFound, $"No reader group {request.Scope}/{request.Group}."));
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
