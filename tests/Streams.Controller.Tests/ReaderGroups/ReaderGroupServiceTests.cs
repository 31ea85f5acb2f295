using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Streams;
using Streams.Controller.Tests.Streams;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Controller.Tests.ReaderGroups;

/// <summary>
/// Reader groups served by the controller: records in the metadata store, reader exchanges, successors after a scale,
/// a new leader reading the state back, and a stale one refused.
/// </summary>
public sealed class ReaderGroupServiceTests : IAsyncLifetime
{
    private static readonly CoordinatorRules Immediate = new() { JoinWindow = TimeSpan.Zero, RevokeInterval = TimeSpan.Zero };

    private readonly TempDirectory _dir = new("reader-groups");
    private readonly RecordingSegmentStore _segments = new();
    private FileMetadataStore _store = null!;
    private ControllerService _controller = null!;
    private bool _leading = true;

    public async ValueTask InitializeAsync()
    {
        _store = FileMetadataStore.Open(_dir.Path);
        _controller = new ControllerService(new StreamMetadataStore(_store), _segments, new Locator(), new ControllerOptions(), NullLogger<ControllerService>.Instance);
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", new StreamConfiguration { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = 2 } } }, default);
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        _dir.Dispose();
    }

    private ReaderGroupService Service() => new(_store, _controller, () => _leading, NullLogger<ReaderGroupService>.Instance, Immediate);

    private static CreateReaderGroupRequest Create(string group = "billing") => new()
    {
        Scope = "shop", Group = group,
        Config = new ReaderGroupConfig { Streams = { new ReaderGroupStream { Scope = "shop", Stream = "orders" } }, HeartbeatIntervalMs = 1000, SessionTimeoutMs = 10_000 },
    };

    private static ReaderMessage Join(string reader) => new() { Join = new Join { Scope = "shop", Group = "billing", ReaderId = reader } };

    private static Task<IReadOnlyList<CoordinatorMessage>> Exchange(ReaderGroupService service, string reader, params ReaderMessage[] messages) =>
        service.ExchangeAsync("shop", "billing", reader, messages, default);

    private static SegmentPosition At(Assign assign, long offset) => new() { SegmentId = assign.SegmentId, Segment = assign.Segment, Offset = offset };

    [Fact]
    public async Task A_group_starts_at_the_stream_head_and_a_second_create_returns_it_unchanged()
    {
        var service = Service();
        var created = await service.CreateAsync(Create(), default);
        Assert.True(created.Created);
        Assert.Equal(["shop/orders/0.#epoch.0", "shop/orders/1.#epoch.0"], created.Info.Segments.Select(s => s.Segment));
        Assert.All(created.Info.Segments, s => Assert.Equal(SegmentReadState.Unassigned, s.State));

        var again = await service.CreateAsync(Create(), default);
        Assert.False(again.Created);
        Assert.Equal(["billing"], await service.ListAsync("shop", default));
        Assert.True(await service.DeleteAsync("shop", "billing", default));
        var missing = await Assert.ThrowsAsync<RpcException>(() => service.DescribeAsync("shop", "billing", default));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Bad_configurations_are_refused_with_a_message_that_says_what_to_change()
    {
        var service = Service();
        var none = new CreateReaderGroupRequest { Scope = "shop", Group = "g", Config = new ReaderGroupConfig() };
        Assert.Contains("at least one stream", (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(none, default))).Status.Detail);
        var cut = Create("g");
        cut.Config.Streams[0].End = new StreamCut { Scope = "shop", Stream = "orders" };
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(cut, default))).StatusCode);
        var noStream = Create("g");
        noStream.Config.Streams[0].Stream = "nope";
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(noStream, default))).StatusCode);
    }

    [Fact]
    public async Task Readers_share_the_segments_through_a_revoke_and_a_release_and_a_new_leader_sees_the_same_state()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var a = await Exchange(service, "a", Join("a"));
        var sessionA = a[0].Joined.SessionEpoch;
        var ofA = a.Where(m => m.Assign is not null).Select(m => m.Assign).ToList();
        Assert.Equal(2, ofA.Count);

        var b = await Exchange(service, "b", Join("b"));
        var sessionB = b[0].Joined.SessionEpoch;
        Assert.DoesNotContain(b, m => m.Assign is not null);
        var revoke = (await Exchange(service, "a", new ReaderMessage { Heartbeat = new Heartbeat { SessionEpoch = sessionA } })).Single(m => m.Revoke is not null).Revoke;
        var revoked = ofA.Single(x => x.SegmentId == revoke.SegmentId);
        await Exchange(service, "a", new ReaderMessage { Release = new Release { SessionEpoch = sessionA, OwnerEpoch = revoke.OwnerEpoch, Position = At(revoked, 40) } });
        var moved = (await Exchange(service, "b", new ReaderMessage { Heartbeat = new Heartbeat { SessionEpoch = sessionB } })).Single(m => m.Assign is not null).Assign;
        Assert.Equal(revoke.SegmentId, moved.SegmentId);
        Assert.Equal(40, moved.StartOffset);

        // The leader fails over: the next one reads the group back, members and owners included.
        var next = Service();
        var described = await next.DescribeAsync("shop", "billing", default);
        Assert.Equal(["a", "b"], described.Members.Select(m => m.ReaderId));
        Assert.Equal("b", described.Segments.Single(s => s.SegmentId == moved.SegmentId).Owner);
        Assert.Equal(40, described.Segments.Single(s => s.SegmentId == moved.SegmentId).CommittedOffset);

        // It takes a write; the old leader's next write finds the record moved and is refused.
        var kept = ofA.Single(x => x.SegmentId != revoke.SegmentId);
        await Exchange(next, "a", new ReaderMessage { Leave = new Leave { SessionEpoch = sessionA, Positions = { At(kept, 7) } } });
        var stale = await Assert.ThrowsAsync<RpcException>(() => Exchange(service, "b", new ReaderMessage { Leave = new Leave { SessionEpoch = sessionB } }));
        Assert.Equal(StatusCode.Unavailable, stale.StatusCode);
        Assert.Equal(7, (await next.DescribeAsync("shop", "billing", default)).Segments.Single(s => s.SegmentId == kept.SegmentId).CommittedOffset);
    }

    [Fact]
    public async Task After_a_split_the_successors_are_handed_out_once_the_sealed_segment_is_completed()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var upper = joined.Select(m => m.Assign).Single(x => x is not null && x.SegmentId == SegmentName.ComposeId(0, 1));
        await _controller.ScaleStreamAsync("shop", "orders", [upper.SegmentId], [new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], ControllerService.ManualReason, default);

        var replies = await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = upper.OwnerEpoch, Position = At(upper, 900) } });
        var successors = replies.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.KeyStart).ToList();
        Assert.Equal([(0.5, 0.75), (0.75, 1.0)], successors.Select(x => (x.KeyStart, x.KeyEnd)));
        Assert.All(successors, x => Assert.Equal(0, x.StartOffset));
        var described = await service.DescribeAsync("shop", "billing", default);
        Assert.DoesNotContain(described.Segments, s => s.SegmentId == upper.SegmentId);
        Assert.Equal(3, described.Segments.Count);
    }

    [Fact]
    public async Task A_controller_that_does_not_lead_refuses_with_unavailable()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        _leading = false;
        var refused = await Assert.ThrowsAsync<RpcException>(() => Exchange(service, "a", Join("a")));
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Null(await service.GetBacklogAsync("shop", "billing", default));
    }
}
