using Streams.Contracts.Controller;
using Streams.Controller.ReaderGroups;

namespace Streams.Controller.Tests.ReaderGroups;

/// <summary>The coordination rules of a reader group, on the pure coordinator with a clock the test moves.</summary>
public sealed class GroupCoordinatorTests
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly CoordinatorRules Rules = new() { JoinWindow = TimeSpan.FromSeconds(1), RevokeInterval = TimeSpan.FromSeconds(5) };
    private static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    private DateTimeOffset _now = Start;

    private static long IdOf(int epoch, int number) => ((long)epoch << 32) | (uint)number;

    private static GroupSegmentRecord Segment(int number, int epoch = 0, double start = 0, double end = 1) =>
        new() { Scope = "s", Stream = "t", SegmentId = IdOf(epoch, number), Name = $"s/t/{number}.#epoch.{epoch}", KeyStart = start, KeyEnd = end };

    private static GroupStateRecord StateWith(int segments) =>
        new() { Segments = [.. Enumerable.Range(0, segments).Select(i => Segment(i, 0, (double)i / segments, (double)(i + 1) / segments))] };

    private GroupCoordinator Coordinator(GroupStateRecord state) => new(state, Heartbeat, Timeout, Rules, _now);

    private long Join(GroupCoordinator coordinator, string reader) =>
        coordinator.Handle(reader, new ReaderMessage { Join = new Join { Scope = "s", Group = "g", ReaderId = reader } }, _now).Single().Joined.SessionEpoch;

    private void Advance(GroupCoordinator coordinator, TimeSpan by)
    {
        _now += by;
        coordinator.Tick(_now);
    }

    /// <summary>A heartbeat that mentions every segment the reader owns, as readers send them.</summary>
    private void Beat(GroupCoordinator coordinator, string reader, long session)
    {
        var heartbeat = new Heartbeat { SessionEpoch = session };
        heartbeat.ReadPositions.AddRange(coordinator.State.Segments.Where(s => s.Owner == reader)
            .Select(s => new SegmentPosition { SegmentId = s.SegmentId, Segment = s.Name, Offset = s.CommittedOffset }));
        coordinator.Handle(reader, new ReaderMessage { Heartbeat = heartbeat }, _now);
    }

    private static List<Assign> Assigns(IEnumerable<CoordinatorMessage> messages) => [.. messages.Where(m => m.KindCase == CoordinatorMessage.KindOneofCase.Assign).Select(m => m.Assign)];

    private static SegmentPosition At(Assign assign, long offset) => new() { SegmentId = assign.SegmentId, Segment = assign.Segment, Offset = offset };

    private IReadOnlyList<CoordinatorMessage> Commit(GroupCoordinator coordinator, string reader, long session, Assign assign, long offset) =>
        coordinator.Handle(reader, new ReaderMessage { Commit = new Commit { SessionEpoch = session, OwnerEpoch = assign.OwnerEpoch, Position = At(assign, offset) } }, _now);

    private IReadOnlyList<CoordinatorMessage> Complete(GroupCoordinator coordinator, string reader, long session, Assign assign, long offset) =>
        coordinator.Handle(reader, new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = session, OwnerEpoch = assign.OwnerEpoch, Position = At(assign, offset) } }, _now);

    [Fact]
    public void Readers_that_join_within_the_join_window_share_the_segments_and_nothing_is_assigned_before_it_ends()
    {
        var coordinator = Coordinator(StateWith(4));
        Join(coordinator, "a");
        Advance(coordinator, TimeSpan.FromMilliseconds(500));
        Assert.Empty(coordinator.Drain("a"));
        Join(coordinator, "b");
        Advance(coordinator, TimeSpan.FromMilliseconds(600));

        var a = Assigns(coordinator.Drain("a"));
        var b = Assigns(coordinator.Drain("b"));
        Assert.Equal(2, a.Count);
        Assert.Equal(2, b.Count);
        Assert.Equal(4, a.Concat(b).Select(x => x.SegmentId).Distinct().Count());
        Assert.Equal(4, a.Concat(b).Select(x => x.OwnerEpoch).Distinct().Count());
        Assert.All(a.Concat(b), x => Assert.Equal(0, x.StartOffset));
        Assert.Equal(GroupDirt.Now, coordinator.Dirty);
    }

    [Fact]
    public void A_stale_session_or_owner_epoch_is_fenced_and_a_rejoin_takes_the_segments_from_their_committed_offsets()
    {
        var coordinator = Coordinator(StateWith(1));
        var first = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var assign = Assigns(coordinator.Drain("a")).Single();
        Assert.Empty(Commit(coordinator, "a", first, assign, 120));

        // The reader restarts under the same id: the old session is over.
        var second = Join(coordinator, "a");
        Assert.True(second > first);
        var fenced = Commit(coordinator, "a", first, assign, 500).Single();
        Assert.Equal(0, fenced.Fenced.SegmentId);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        var again = Assigns(coordinator.Drain("a")).Single();
        Assert.Equal(120, again.StartOffset);
        Assert.True(again.OwnerEpoch > assign.OwnerEpoch);

        // The new session, with the old assignment's owner epoch (a late message): ignored, not fenced, since fencing
        // the segment would drop the reader's current assignment of it; nothing committed.
        Assert.Empty(Commit(coordinator, "a", second, assign, 500));
        Assert.Equal(120, coordinator.State.Segments.Single().CommittedOffset);
        Assert.Empty(Commit(coordinator, "a", second, again, 300));
        Assert.Empty(Commit(coordinator, "a", second, again, 200));
        Assert.Equal(300, coordinator.State.Segments.Single().CommittedOffset);
    }

    [Fact]
    public void A_silent_reader_loses_its_segments_after_the_session_timeout_to_the_others_from_its_commits()
    {
        var coordinator = Coordinator(StateWith(2));
        var a = Join(coordinator, "a");
        var b = Join(coordinator, "b");
        Advance(coordinator, Rules.JoinWindow);
        var ofA = Assigns(coordinator.Drain("a")).Single();
        Assert.Single(Assigns(coordinator.Drain("b")));
        Assert.Empty(Commit(coordinator, "a", a, ofA, 64));

        // b keeps heartbeating; a falls silent: its segment stays its own for the whole session timeout (30 s), then moves.
        for (var i = 1; i <= 11; i++)
        {
            Beat(coordinator, "b", b);
            Advance(coordinator, Heartbeat);
            if (i * Heartbeat <= Timeout)
            {
                Assert.Empty(Assigns(coordinator.Drain("b")));
            }
        }

        var taken = Assigns(coordinator.Drain("b")).Single();
        Assert.Equal(ofA.SegmentId, taken.SegmentId);
        Assert.Equal(64, taken.StartOffset);
        Assert.DoesNotContain(coordinator.State.Members, m => m.ReaderId == "a");
    }

    [Fact]
    public void A_merge_successor_is_handed_out_only_once_both_predecessors_are_completed()
    {
        var coordinator = Coordinator(StateWith(2));
        var session = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var assigns = Assigns(coordinator.Drain("a")).OrderBy(x => x.SegmentId).ToList();
        var merged = new GroupSuccessor("s", "t", IdOf(1, 2), "s/t/2.#epoch.1", 0, 1, [IdOf(0, 0), IdOf(0, 1)]);

        Assert.Empty(Complete(coordinator, "a", session, assigns[0], 1000));
        Assert.Equal([IdOf(0, 0)], coordinator.SuccessorLookups.Select(s => s.SegmentId));
        coordinator.AddSuccessors(IdOf(0, 0), [merged]);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        Assert.Empty(Assigns(coordinator.Drain("a")));
        Assert.Equal(GroupSegmentState.Future, coordinator.State.Segments.Single(s => s.SegmentId == merged.SegmentId).State);

        Assert.Empty(Complete(coordinator, "a", session, assigns[1], 2000));
        coordinator.AddSuccessors(IdOf(0, 1), [merged]);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        var next = Assigns(coordinator.Drain("a")).Single();
        Assert.Equal(merged.SegmentId, next.SegmentId);
        Assert.Equal(0, next.StartOffset);
        Assert.Single(coordinator.State.Segments);
    }

    [Fact]
    public void A_new_reader_gets_segments_one_revoke_at_a_time_and_the_first_keeps_its_share()
    {
        var coordinator = Coordinator(StateWith(4));
        var a = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var ofA = Assigns(coordinator.Drain("a"));
        Assert.Equal(4, ofA.Count);

        var b = Join(coordinator, "b");
        for (var round = 0; round < 2; round++)
        {
            Beat(coordinator, "a", a);
            Beat(coordinator, "b", b);
            Advance(coordinator, TimeSpan.FromMilliseconds(100));
            var revoke = coordinator.Drain("a").Single(m => m.KindCase == CoordinatorMessage.KindOneofCase.Revoke).Revoke;
            Advance(coordinator, TimeSpan.FromMilliseconds(100));
            Assert.DoesNotContain(coordinator.Drain("a"), m => m.KindCase == CoordinatorMessage.KindOneofCase.Revoke);

            // Until a releases it, the segment stays a's: nothing goes to b.
            Assert.Empty(Assigns(coordinator.Drain("b")));
            var revoked = ofA.Single(x => x.SegmentId == revoke.SegmentId);
            coordinator.Handle("a", new ReaderMessage { Release = new Release { SessionEpoch = a, OwnerEpoch = revoke.OwnerEpoch, Position = At(revoked, 10) } }, _now);
            Advance(coordinator, TimeSpan.FromMilliseconds(100));
            var moved = Assigns(coordinator.Drain("b")).Single();
            Assert.Equal(revoke.SegmentId, moved.SegmentId);
            Assert.Equal(10, moved.StartOffset);
            Beat(coordinator, "b", b);
            Advance(coordinator, Rules.RevokeInterval);
        }

        Beat(coordinator, "a", a);
        Advance(coordinator, Rules.RevokeInterval);
        Assert.Empty(coordinator.Drain("a"));
        Assert.Equal(2, coordinator.State.Segments.Count(s => s.Owner == "a"));
        Assert.Equal(2, coordinator.State.Segments.Count(s => s.Owner == "b"));
    }

    [Fact]
    public void An_assign_the_reader_never_mentions_is_sent_again_after_two_heartbeat_intervals_until_it_does()
    {
        var coordinator = Coordinator(StateWith(1));
        var session = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var first = Assigns(coordinator.Drain("a")).Single();

        // The reply that carried it was lost: the reader heartbeats without the segment.
        coordinator.Handle("a", new ReaderMessage { Heartbeat = new Heartbeat { SessionEpoch = session } }, _now);
        Advance(coordinator, Heartbeat);
        Assert.Empty(coordinator.Drain("a"));
        coordinator.Handle("a", new ReaderMessage { Heartbeat = new Heartbeat { SessionEpoch = session } }, _now);
        Advance(coordinator, Heartbeat);
        var again = Assigns(coordinator.Drain("a")).Single();
        Assert.Equal((first.SegmentId, first.OwnerEpoch, first.StartOffset), (again.SegmentId, again.OwnerEpoch, again.StartOffset));

        // Once the reader mentions it, it is not repeated.
        Beat(coordinator, "a", session);
        for (var i = 0; i < 4; i++)
        {
            Advance(coordinator, Heartbeat);
            Beat(coordinator, "a", session);
        }

        Assert.Empty(coordinator.Drain("a"));
    }

    [Fact]
    public void Segments_are_placed_by_backlog_within_each_readers_share()
    {
        var coordinator = Coordinator(StateWith(4));
        coordinator.SetLength(IdOf(0, 0), 100_000);
        foreach (var i in new[] { 1, 2, 3 })
        {
            coordinator.SetLength(IdOf(0, i), 10_000);
        }

        Join(coordinator, "a");
        Join(coordinator, "b");
        Advance(coordinator, Rules.JoinWindow);
        Advance(coordinator, Rules.RevokeInterval);
        var a = coordinator.State.Segments.Where(s => s.Owner == "a").Select(s => s.SegmentId).ToList();
        var b = coordinator.State.Segments.Where(s => s.Owner == "b").Select(s => s.SegmentId).ToList();
        Assert.Equal(2, a.Count);
        Assert.Equal(2, b.Count);
        var (big, small) = a.Contains(IdOf(0, 0)) ? (coordinator.Drain("a"), coordinator.Drain("b")) : (coordinator.Drain("b"), coordinator.Drain("a"));
        Assert.DoesNotContain(big.Concat(small), m => m.KindCase == CoordinatorMessage.KindOneofCase.Revoke);
        Assert.Equal(new GroupBacklog(130_000, 4), coordinator.Backlog());
    }

    [Fact]
    public void The_backlog_counts_from_the_commits_to_the_end_cut_or_the_segment_end()
    {
        var state = new GroupStateRecord
        {
            Segments =
            [
                Segment(0, 0, 0, 0.5),
                new GroupSegmentRecord { Scope = "s", Stream = "t", SegmentId = IdOf(0, 1), Name = "s/t/1.#epoch.0", KeyStart = 0.5, KeyEnd = 1, EndOffset = 300 },
            ],
        };
        var coordinator = Coordinator(state);
        coordinator.SetLength(IdOf(0, 0), 1000);
        coordinator.SetLength(IdOf(0, 1), 1000);
        var session = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var assigns = Assigns(coordinator.Drain("a")).OrderBy(x => x.SegmentId).ToList();
        Assert.Equal(300, assigns[1].EndOffset);
        Assert.Equal(new GroupBacklog(1300, 2), coordinator.Backlog());

        Commit(coordinator, "a", session, assigns[0], 1000);
        Commit(coordinator, "a", session, assigns[1], 100);
        Assert.Equal(new GroupBacklog(200, 1), coordinator.Backlog());
        Assert.Equal(GroupDirt.Now, coordinator.Dirty);
        coordinator.MarkWritten();
        Commit(coordinator, "a", session, assigns[1], 200);
        Assert.Equal(GroupDirt.Commits, coordinator.Dirty);
    }

    [Fact]
    public void When_every_segment_is_completed_and_nothing_follows_the_readers_are_told_the_group_ended()
    {
        var coordinator = Coordinator(StateWith(1));
        var session = Join(coordinator, "a");
        Advance(coordinator, Rules.JoinWindow);
        var assign = Assigns(coordinator.Drain("a")).Single();
        Complete(coordinator, "a", session, assign, 4096);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        Assert.False(coordinator.Ended);
        Assert.Empty(coordinator.Drain("a"));

        // The stream was sealed: no successors.
        coordinator.AddSuccessors(assign.SegmentId, []);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        Assert.True(coordinator.Ended);
        Assert.Equal(CoordinatorMessage.KindOneofCase.EndOfGroup, coordinator.Drain("a").Single().KindCase);
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        Assert.Empty(coordinator.Drain("a"));
    }

    [Fact]
    public void A_new_leading_controller_gives_every_stored_member_a_full_session_timeout()
    {
        var coordinator = Coordinator(StateWith(2));
        Join(coordinator, "a");
        Join(coordinator, "b");
        Advance(coordinator, Rules.JoinWindow);

        // The leader fails over long after the members last spoke; the new one reads the stored state back.
        _now += TimeSpan.FromMinutes(10);
        var taken = Coordinator(coordinator.State);
        taken.Tick(_now);
        Assert.Equal(2, taken.State.Members.Count);
        Assert.Equal(2, taken.State.Segments.Count(s => s.State == GroupSegmentState.Assigned));

        Advance(taken, Timeout + TimeSpan.FromSeconds(1));
        Assert.Empty(taken.State.Members);
        Assert.All(taken.State.Segments, s => Assert.Equal(GroupSegmentState.Unassigned, s.State));
    }

    [Fact]
    public void A_reader_declared_offline_hands_its_segments_over_at_once_never_before_its_commits()
    {
        var coordinator = Coordinator(StateWith(2));
        var a = Join(coordinator, "a");
        Join(coordinator, "b");
        Advance(coordinator, Rules.JoinWindow);
        var ofA = Assigns(coordinator.Drain("a")).Single();
        Assigns(coordinator.Drain("b"));
        Commit(coordinator, "a", a, ofA, 500);

        Assert.True(coordinator.ReaderOffline("a", [At(ofA, 100)]));
        Assert.False(coordinator.ReaderOffline("a", []));
        Advance(coordinator, TimeSpan.FromMilliseconds(100));
        var moved = Assigns(coordinator.Drain("b")).Single();
        Assert.Equal(ofA.SegmentId, moved.SegmentId);
        Assert.Equal(500, moved.StartOffset);
    }
}
