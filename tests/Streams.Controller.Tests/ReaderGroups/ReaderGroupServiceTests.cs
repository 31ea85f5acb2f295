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
        // The backlog it still gives, from the stored record (for KEDA asking any controller).
        Assert.Equal(new GroupBacklog(0, 0), await service.GetBacklogAsync("shop", "billing", default));
        Assert.Null(await service.GetBacklogAsync("shop", "nobody", default));
    }

    private static readonly long Seg0 = SegmentName.ComposeId(0, 0);
    private static readonly long Seg1 = SegmentName.ComposeId(0, 1);

    private static StreamCut Cut(params (long Id, long Offset)[] positions)
    {
        var cut = new StreamCut { Scope = "shop", Stream = "orders" };
        foreach (var (id, offset) in positions)
        {
            cut.Positions[id] = offset;
        }

        return cut;
    }

    private static ReaderMessage Heartbeat(long session) => new() { Heartbeat = new Heartbeat { SessionEpoch = session } };

    [Fact]
    public async Task A_start_cut_sets_where_each_segment_is_read_from_and_a_bad_cut_says_what_is_wrong()
    {
        var service = Service();
        var request = Create();
        request.Config.Streams[0].Start = Cut((Seg0, 30), (Seg1, 70));
        await service.CreateAsync(request, default);
        var assigns = (await Exchange(service, "a", Join("a"))).Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        Assert.Equal([(Seg0, 30L, -1L), (Seg1, 70L, -1L)], assigns.Select(x => (x.SegmentId, x.StartOffset, x.EndOffset)));

        var gap = Create("gap");
        gap.Config.Streams[0].Start = Cut((Seg0, 0));
        Assert.Contains("does not cover every routing key", (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(gap, default))).Status.Detail);
        var unknown = Create("unknown");
        unknown.Config.Streams[0].End = Cut((Seg0, 0), (Seg1, 0), (SegmentName.ComposeId(3, 9), 5));
        Assert.Contains("which the stream does not have", (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(unknown, default))).Status.Detail);
        var backwards = Create("backwards");
        backwards.Config.Streams[0].Start = Cut((Seg0, 50), (Seg1, 0));
        backwards.Config.Streams[0].End = Cut((Seg0, 10), (Seg1, 10));
        Assert.Contains("past its end cut", (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(backwards, default))).Status.Detail);
        var otherStream = Create("other");
        otherStream.Config.Streams[0].Start = new StreamCut { Scope = "shop", Stream = "returns", Positions = { [Seg0] = 0 } };
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => service.CreateAsync(otherStream, default))).StatusCode);
    }

    [Fact]
    public async Task A_bounded_group_reads_to_its_end_cut_nothing_after_it_and_then_ends()
    {
        var service = Service();
        var request = Create();
        request.Config.Streams[0].End = Cut((Seg0, 100), (Seg1, 50));
        await service.CreateAsync(request, default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var assigns = joined.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        Assert.Equal([100L, 50L], assigns.Select(x => x.EndOffset));

        // The stream splits after the cut was taken: the successors of segment 1 are beyond the end cut, never read.
        await _controller.ScaleStreamAsync("shop", "orders", [Seg1], [new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], ControllerService.ManualReason, default);
        var afterFirst = await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assigns[1].OwnerEpoch, Position = At(assigns[1], 50) } });
        Assert.DoesNotContain(afterFirst, m => m.Assign is not null || m.EndOfGroup is not null);
        Assert.Equal([Seg0], (await service.DescribeAsync("shop", "billing", default)).Segments.Select(s => s.SegmentId));

        var last = await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 100) } });
        Assert.Contains(last, m => m.EndOfGroup is not null);
        var described = await service.DescribeAsync("shop", "billing", default);
        Assert.True(described.Ended);
        Assert.Equal(new Dictionary<long, long> { [Seg0] = 100, [Seg1] = 50 }, described.Config.Streams[0].End.Positions);
    }

    [Fact]
    public async Task A_checkpoint_holds_every_readers_commits_and_a_reset_to_it_reads_again_from_exactly_there()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var assigns = joined.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        await Exchange(service, "a", new ReaderMessage { Commit = new Commit { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 10) } });

        var taking = service.CreateCheckpointAsync("shop", "billing", "nightly", TimeSpan.FromSeconds(10), default);
        var request = (await Exchange(service, "a", Heartbeat(session))).Single(m => m.Checkpoint is not null).Checkpoint;
        Assert.Equal("nightly", request.Name);
        Assert.False(taking.IsCompleted);
        await Exchange(service, "a", new ReaderMessage { CheckpointAck = new CheckpointAck { SessionEpoch = session, Name = "nightly", Positions = { At(assigns[0], 25), At(assigns[1], 40) } } });
        var checkpoint = await taking.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(checkpoint.Complete);
        Assert.Equal(new Dictionary<long, long> { [Seg0] = 25, [Seg1] = 40 }, Assert.Single(checkpoint.Cuts).Positions);

        // The reader goes on; the reset fences its assignments and hands them out again from the checkpoint.
        await Exchange(service, "a", new ReaderMessage { Commit = new Commit { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 90) } });
        await service.ResetAsync("shop", "billing", checkpoint.Cuts, default);
        var after = await Exchange(service, "a", Heartbeat(session));
        Assert.Equal([Seg0, Seg1], after.Where(m => m.Fenced is not null).Select(m => m.Fenced.SegmentId).Order());
        var again = after.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        Assert.Equal([(Seg0, 25L), (Seg1, 40L)], again.Select(x => (x.SegmentId, x.StartOffset)));
        Assert.All(again, x => Assert.True(x.OwnerEpoch > assigns.Max(y => y.OwnerEpoch)));
        // A late commit of the old assignment changes nothing, and is not fenced: the reader holds the segment again.
        var stale = await Exchange(service, "a", new ReaderMessage { Commit = new Commit { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 95) } });
        Assert.DoesNotContain(stale, m => m.Fenced is not null);
        Assert.Equal(25, (await service.DescribeAsync("shop", "billing", default)).Segments.Single(x => x.SegmentId == Seg0).CommittedOffset);
        var elsewhere = await Exchange(service, "b", Join("b"));
        var fenced = await Exchange(service, "b", new ReaderMessage { Commit = new Commit { SessionEpoch = elsewhere[0].Joined.SessionEpoch, OwnerEpoch = again[0].OwnerEpoch, Position = At(again[0], 95) } });
        Assert.Contains(fenced, m => m.Fenced is not null);

        // The name again returns the same checkpoint; a new leader reads it back with the group.
        Assert.Equal(checkpoint, await service.CreateCheckpointAsync("shop", "billing", "nightly", TimeSpan.FromSeconds(1), default));
        var described = await Service().DescribeAsync("shop", "billing", default);
        Assert.Equal(1, described.Generation);
        // The reset is recorded as the group's position too, so retention following it keeps what it reads again.
        Assert.Equal("nightly", described.Checkpoints[0].Name);
        Assert.StartsWith("reset-", described.Checkpoints[1].Name, StringComparison.Ordinal);
        Assert.Equal(checkpoint.Cuts[0].Positions, described.Checkpoints[1].Cuts[0].Positions);
        Assert.Equal(25, described.Segments.Single(s => s.SegmentId == Seg0).CommittedOffset);
    }

    [Fact]
    public async Task A_checkpoint_a_reader_does_not_answer_times_out_and_the_next_one_can_be_taken()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var session = (await Exchange(service, "a", Join("a")))[0].Joined.SessionEpoch;
        var silent = await Assert.ThrowsAsync<RpcException>(() => service.CreateCheckpointAsync("shop", "billing", "one", TimeSpan.FromMilliseconds(300), default));
        Assert.Equal(StatusCode.DeadlineExceeded, silent.StatusCode);

        var taking = service.CreateCheckpointAsync("shop", "billing", "two", TimeSpan.FromSeconds(10), default);
        var other = await Assert.ThrowsAsync<RpcException>(() => service.CreateCheckpointAsync("shop", "billing", "three", TimeSpan.FromSeconds(1), default));
        Assert.Equal(StatusCode.FailedPrecondition, other.StatusCode);
        await Exchange(service, "a", new ReaderMessage { Leave = new Leave { SessionEpoch = session } });
        Assert.Equal(new Dictionary<long, long> { [Seg0] = 0, [Seg1] = 0 }, Assert.Single((await taking.WaitAsync(TimeSpan.FromSeconds(10))).Cuts).Positions);
    }

    [Fact]
    public async Task A_checkpoint_across_a_merge_keeps_the_successor_waiting_for_its_unfinished_predecessor_after_a_reset()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var assigns = joined.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        await _controller.ScaleStreamAsync("shop", "orders", [Seg0, Seg1], [new KeyRangeRecord(0, 1)], ControllerService.ManualReason, default);
        var merged = (await _controller.ListSegmentsAsync("shop", "orders", default)).Segments.Single(s => s.PredecessorIds.Count == 2).Segment.SegmentId;
        await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 500) } });

        var taking = service.CreateCheckpointAsync("shop", "billing", "mid-merge", TimeSpan.FromSeconds(10), default);
        await Exchange(service, "a", Heartbeat(session));
        await Exchange(service, "a", new ReaderMessage { CheckpointAck = new CheckpointAck { SessionEpoch = session, Name = "mid-merge", Positions = { At(assigns[1], 15) } } });
        var cut = Assert.Single((await taking.WaitAsync(TimeSpan.FromSeconds(10))).Cuts);
        Assert.Equal(new Dictionary<long, long> { [Seg1] = 15, [merged] = 0 }, cut.Positions);

        await service.ResetAsync("shop", "billing", [cut], default);
        var described = await service.DescribeAsync("shop", "billing", default);
        Assert.Equal(SegmentReadState.Future, described.Segments.Single(s => s.SegmentId == merged).State);
        Assert.Equal(15, described.Segments.Single(s => s.SegmentId == Seg1).CommittedOffset);
    }

    [Fact]
    public async Task An_end_cut_past_a_split_reads_the_sealed_segment_whole_and_its_successors_to_the_cut()
    {
        var service = Service();
        await _controller.ScaleStreamAsync("shop", "orders", [Seg1], [new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], ControllerService.ManualReason, default);
        var pieces = (await _controller.ListSegmentsAsync("shop", "orders", default)).Segments.Where(s => s.PredecessorIds.Contains(Seg1))
            .Select(s => s.Segment.SegmentId).Order().ToList();
        var request = Create();
        request.Config.Streams[0].End = Cut((Seg0, 100), (pieces[0], 30), (pieces[1], 0));
        await service.CreateAsync(request, default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var upper = joined.Select(m => m.Assign).Single(x => x is not null && x.SegmentId == Seg1);
        Assert.Equal(-1, upper.EndOffset);

        var next = await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = upper.OwnerEpoch, Position = At(upper, 700) } });
        var successor = next.Select(m => m.Assign).Single(x => x is not null);
        Assert.Equal((pieces[0], 0L, 30L), (successor.SegmentId, successor.StartOffset, successor.EndOffset));
        Assert.DoesNotContain((await service.DescribeAsync("shop", "billing", default)).Segments, s => s.SegmentId == pieces[1]);
    }

    [Fact]
    public async Task Automatic_checkpoints_are_taken_every_interval_and_a_subscribed_group_gives_retention_its_latest()
    {
        var service = Service();
        var request = Create();
        request.Config.CheckpointIntervalMs = 1000;
        request.Config.Retention = GroupRetention.AtLastCheckpoint;
        await service.CreateAsync(request, default);
        await service.CreateAsync(Create("unsubscribed"), default);
        Assert.Null(await service.GetSubscriberCutsAsync("shop", "orders", default)); // the groups are not all loaded yet

        using var leading = new CancellationTokenSource();
        var running = service.RunAsync(leading.Token);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var assigns = joined.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        IReadOnlyList<StreamCut>? subscribers = null;
        await Waiting.UntilAsync(async () => (subscribers = await service.GetSubscriberCutsAsync("shop", "orders", default)) is not null, "the groups loaded", TimeSpan.FromSeconds(10));
        Assert.Empty(Assert.Single(subscribers!).Positions); // no checkpoint yet: the group holds everything back

        var answered = 0;
        IReadOnlyList<Checkpoint> taken = [];
        await Waiting.UntilAsync(async () =>
        {
            foreach (var asked in (await Exchange(service, "a", Heartbeat(session))).Where(m => m.Checkpoint is not null))
            {
                answered++;
                await Exchange(service, "a", new ReaderMessage { CheckpointAck = new CheckpointAck { SessionEpoch = session, Name = asked.Checkpoint.Name, Positions = { At(assigns[0], 10), At(assigns[1], 20) } } });
            }

            taken = [.. (await service.DescribeAsync("shop", "billing", default)).Checkpoints];
            return taken.Count > 0;
        }, "an automatic checkpoint", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100));
        Assert.StartsWith("auto-", taken[0].Name, StringComparison.Ordinal);
        Assert.True(answered >= 1);
        var cut = Assert.Single(await service.GetSubscriberCutsAsync("shop", "orders", default) ?? []);
        Assert.Equal(new Dictionary<long, long> { [Seg0] = 10, [Seg1] = 20 }, cut.Positions);
        await leading.CancelAsync();
        await running;
    }

    [Fact]
    public async Task A_checkpoint_after_a_segment_was_read_to_the_end_of_a_sealed_stream_still_covers_it_and_a_late_reader_gets_the_end()
    {
        var service = Service();
        await service.CreateAsync(Create(), default);
        var joined = await Exchange(service, "a", Join("a"));
        var session = joined[0].Joined.SessionEpoch;
        var assigns = joined.Where(m => m.Assign is not null).Select(m => m.Assign).OrderBy(x => x.SegmentId).ToList();
        await _controller.SealStreamAsync("shop", "orders", default);
        await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assigns[0].OwnerEpoch, Position = At(assigns[0], 300) } });

        // Segment 0 has nothing after it, yet the checkpoint names where it ended: the cut covers every key.
        var taking = service.CreateCheckpointAsync("shop", "billing", "late", TimeSpan.FromSeconds(10), default);
        await Exchange(service, "a", Heartbeat(session));
        await Exchange(service, "a", new ReaderMessage { CheckpointAck = new CheckpointAck { SessionEpoch = session, Name = "late", Positions = { At(assigns[1], 20) } } });
        var cut = Assert.Single((await taking.WaitAsync(TimeSpan.FromSeconds(10))).Cuts);
        Assert.Equal(new Dictionary<long, long> { [Seg0] = 300, [Seg1] = 20 }, cut.Positions);
        Assert.Equal(1, (await service.ResetAsync("shop", "billing", [cut], default)).Generation);

        // The group ends; a reader that joins afterwards is told so at once.
        var again = (await Exchange(service, "a", Heartbeat(session))).Where(m => m.Assign is not null).ToList();
        foreach (var assign in again.Select(m => m.Assign))
        {
            await Exchange(service, "a", new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assign.OwnerEpoch, Position = At(assign, assign.SegmentId == Seg0 ? 300 : 900) } });
        }

        Assert.True((await service.DescribeAsync("shop", "billing", default)).Ended);
        Assert.Contains(await Exchange(service, "late", Join("late")), m => m.EndOfGroup is not null);
    }
}
