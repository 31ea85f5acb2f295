using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Tests.Fakes;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.ReaderGroups;

/// <summary>
/// A group reader against a scripted coordinator (<see cref="FakeReaderGroups"/>): it reads what it is assigned, commits
/// only what the application consumed, completes, releases and drops segments as the protocol says, and heartbeats.
/// </summary>
public sealed class GroupReaderTests : GroupReaderTestBase
{
    [Fact]
    public async Task An_assignment_is_read_from_its_start_offset_to_its_end_offset_and_completed_once_its_last_event_was_consumed()
    {
        var values = Named("a", 10);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch, start: offsets[2], end: offsets[6]));
        await using var reader = Reader();
        await using var events = reader.ReadAsync().GetAsyncEnumerator();

        var read = new List<EventRead<string>>();
        for (var i = 0; i < 4; i++)
        {
            read.Add(await NextAsync(events));
        }

        Assert.Equal(values[2..6], read.Select(e => e.Value));
        Assert.Equal(offsets[6], read[^1].Position.NextOffset);
        // The last event is the application's: not completed before it asks for the next one.
        await ExchangesAsync(3);
        Assert.Empty(Sent(ReaderMessage.KindOneofCase.Completed));

        var next = events.MoveNextAsync().AsTask();
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Completed).Count == 1, "the segment is completed");
        var completed = Sent(ReaderMessage.KindOneofCase.Completed)[0].Completed;
        Assert.Equal(offsets[6], completed.Position.Offset);
        Assert.Equal(Epoch, completed.OwnerEpoch);
        Assert.Equal(segment.Name, completed.Position.Segment);
        Assert.False(next.IsCompleted, "Events past the end offset were read.");

        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        Assert.False(await next.WaitAsync(Patience));
    }

    [Fact]
    public async Task Commits_are_the_next_offsets_of_consumed_events_only()
    {
        var values = Named("a", 20);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader();
        await using var events = reader.ReadAsync().GetAsyncEnumerator();

        for (var i = 0; i < 3; i++)
        {
            await NextAsync(events);
        }

        // Events 0 and 1 are processed (the application asked for more); event 2 is still in its hands.
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Commit).Any(m => m.Commit.Position.Offset == offsets[2]), "events 0 and 1 are committed");
        await ExchangesAsync(3);
        var commits = Sent(ReaderMessage.KindOneofCase.Commit);
        Assert.All(commits, m => Assert.True(m.Commit.Position.Offset <= offsets[2], $"Committed {m.Commit.Position.Offset}, past the consumed {offsets[2]}."));
        Assert.All(commits, m => Assert.Equal(Epoch, m.Commit.OwnerEpoch));
        Assert.All(commits, m => Assert.Contains(m.Commit.Position.Offset, offsets));
    }

    [Fact]
    public async Task Heartbeats_name_every_held_segment_and_a_repeated_assign_changes_nothing()
    {
        var values = Named("a", 6);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader();
        using var stop = new CancellationTokenSource();
        var events = reader.ReadAsync(stop.Token).GetAsyncEnumerator();
        Assert.Equal(values[0], (await NextAsync(events)).Value);
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Heartbeat).Any(m => m.Heartbeat.ReadPositions.Any(p => p.Segment == segment.Name)), "a heartbeat names the segment");

        // The controller repeats the Assign (as when it did not hear of the segment): the reader does not read it again.
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await ExchangesAsync(3);
        for (var i = 1; i < values.Length; i++)
        {
            Assert.Equal(values[i], (await NextAsync(events)).Value);
        }

        await ExchangesAsync(2);
        var next = events.MoveNextAsync().AsTask();
        await Task.Delay(300);
        Assert.False(next.IsCompleted, "An event was read twice after the repeated Assign.");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(Patience));
        await events.DisposeAsync();
    }

    [Fact]
    public async Task Bounded_assignments_complete_exactly_at_their_end_offsets_an_empty_one_at_once_and_the_reader_ends_with_the_group()
    {
        var values = Named("a", 10);
        var offsets = Offsets(values);
        var bounded = Segment(0, values, seal: false);
        var others = Named("b", 4);
        var empty = Segment(1, others, seal: false);
        // The group ends once both are completed, as the controller ends a group whose end cuts are all reached.
        Cluster.Groups.EndAfterCompleted(1, 2);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(bounded, 1, Epoch, start: offsets[3], end: offsets[7]), FakeReaderGroups.Assign(empty, 2, Epoch, start: Offsets(others)[2], end: Offsets(others)[2]));
        await using var reader = Reader();
        using var patience = new CancellationTokenSource(Patience);

        var read = new List<EventRead<string>>();
        var completedEmptyFirst = false;
        await foreach (var e in reader.ReadAsync(patience.Token))
        {
            if (read.Count == 0)
            {
                // Nothing to read in it: completed without waiting for the application.
                await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Completed).Any(m => m.Completed.Position.SegmentId == 2), "the empty assignment is completed");
                completedEmptyFirst = Sent(ReaderMessage.KindOneofCase.Completed).All(m => m.Completed.Position.SegmentId == 2);
            }

            read.Add(e);
            // More is written past the end offset while the reader is at it: none of it is the group's.
            bounded.Write(FakeEvents.Frames(Named($"late{read.Count}-", 1)));
        }

        Assert.True(completedEmptyFirst, "The empty assignment waited for the other one.");
        Assert.Equal(values[3..7], read.Select(e => e.Value));
        var completed = Sent(ReaderMessage.KindOneofCase.Completed).ToDictionary(m => m.Completed.Position.SegmentId, m => m.Completed.Position.Offset);
        Assert.Equal(new Dictionary<long, long> { [1] = offsets[7], [2] = Offsets(others)[2] }, completed);
        Assert.All(Sent(ReaderMessage.KindOneofCase.Commit), m => Assert.True(m.Commit.Position.SegmentId == 1 && m.Commit.Position.Offset <= offsets[7], $"Committed {m.Commit.Position.Offset} of segment {m.Commit.Position.SegmentId}."));
        Assert.Single(Cluster.Groups.ExchangeLog, x => x.Sent.Any(m => m.KindCase == CoordinatorMessage.KindOneofCase.EndOfGroup));
    }

    [Fact]
    public async Task A_segment_whose_unread_events_were_truncated_away_is_completed_at_its_end_or_its_end_offset_with_nothing_read()
    {
        var values = Named("a", 3);
        var offsets = Offsets(values);
        var whole = Segment(0, values, seal: true);
        whole.Truncate(offsets[3]);
        var bounded = Segment(1, values, seal: false);
        bounded.Truncate(offsets[2]);
        Cluster.Groups.EndAfterCompleted(1, 2);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(whole, 1, Epoch), FakeReaderGroups.Assign(bounded, 2, Epoch, end: offsets[1]));
        await using var reader = Reader();
        using var patience = new CancellationTokenSource(Patience);

        var read = new List<string>();
        await foreach (var e in reader.ReadAsync(patience.Token))
        {
            read.Add(e.Value);
        }

        Assert.Empty(read);
        var completed = Sent(ReaderMessage.KindOneofCase.Completed).ToDictionary(m => m.Completed.Position.SegmentId, m => m.Completed.Position.Offset);
        // The bounded one at its end offset, not past it where the truncation left the reader.
        Assert.Equal(new Dictionary<long, long> { [1] = offsets[3], [2] = offsets[1] }, completed);
    }

    [Fact]
    public async Task A_sealed_segment_is_completed_at_its_end_only_after_its_last_event_was_consumed()
    {
        var values = Named("a", 3);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: true);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader();
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(values[i], (await NextAsync(events)).Value);
        }

        await ExchangesAsync(3);
        Assert.Empty(Sent(ReaderMessage.KindOneofCase.Completed));

        var next = events.MoveNextAsync().AsTask();
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Completed).Count == 1, "the segment is completed");
        var completed = Sent(ReaderMessage.KindOneofCase.Completed)[0].Completed;
        Assert.Equal(offsets[3], completed.Position.Offset);
        Assert.Equal(Epoch, completed.OwnerEpoch);
        Assert.Equal(1, completed.SessionEpoch);
        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        Assert.False(await next.WaitAsync(Patience));
    }

    [Fact]
    public async Task With_manual_commits_a_revoked_segment_is_released_only_once_what_it_delivered_is_committed()
    {
        var values = Named("a", 5);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader(new GroupReaderOptions { AutoCommit = false, ReadSize = 1024, TailWait = TimeSpan.FromMilliseconds(200) });
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        var handed = new List<EventRead<string>>();
        for (var i = 0; i < 5; i++)
        {
            handed.Add(await NextAsync(events));
        }

        // Everything was handed on (consumed, as a function host's queue takes events), none of it committed yet.
        var next = events.MoveNextAsync().AsTask();
        Cluster.Groups.Queue(new CoordinatorMessage { Revoke = new Revoke { SegmentId = 1, OwnerEpoch = Epoch } });
        await WaitUntilAsync(() => Cluster.Groups.QueuedCount == 0, "the revoke is handed out");
        await ExchangesAsync(3);
        Assert.Empty(Sent(ReaderMessage.KindOneofCase.Release));

        reader.Commit(handed[^1]);
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Release).Count == 1, "the segment is released");
        Assert.Equal(offsets[5], Sent(ReaderMessage.KindOneofCase.Release)[0].Release.Position.Offset);
        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        Assert.False(await next.WaitAsync(Patience));
    }

    [Fact]
    public async Task A_revoked_segment_is_released_at_the_committed_position_once_what_it_delivered_was_consumed_and_is_read_no_further()
    {
        var values = Named("a", 5);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader();
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        var read = new List<string> { (await NextAsync(events)).Value };
        // All five events are read and buffered (one read) by the time the first is yielded and the revoke handled.
        Cluster.Groups.Queue(new CoordinatorMessage { Revoke = new Revoke { SegmentId = 1, OwnerEpoch = Epoch } });
        await WaitUntilAsync(() => Cluster.Groups.QueuedCount == 0, "the revoke is handed out");
        await ExchangesAsync(2);
        Assert.Empty(Sent(ReaderMessage.KindOneofCase.Release));

        var reading = Task.Run(async () =>
        {
            while (await events.MoveNextAsync())
            {
                lock (read)
                {
                    read.Add(events.Current.Value);
                }
            }
        });
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Release).Count == 1, "the segment is released");
        var release = Sent(ReaderMessage.KindOneofCase.Release)[0].Release;
        Assert.Equal(offsets[5], release.Position.Offset);
        Assert.Equal(Epoch, release.OwnerEpoch);

        segment.Write(FakeEvents.Frames(Named("late", 3)));
        await ExchangesAsync(3);
        lock (read)
        {
            Assert.Equal(values, read);
        }

        Assert.Single(Sent(ReaderMessage.KindOneofCase.Release));
        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        await reading.WaitAsync(Patience);
    }

    [Fact]
    public async Task A_fenced_segment_stops_at_once_its_buffered_events_are_dropped_and_nothing_more_is_sent_for_it()
    {
        var fencedValues = Named("f", 200);
        var fenced = Segment(0, fencedValues, seal: false);
        var other = Segment(1, Named("o", 3), seal: true);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(fenced, 1, Epoch), FakeReaderGroups.Assign(other, 2, Epoch));
        await using var reader = Reader(new GroupReaderOptions { ReadSize = 1024, BufferedReads = 1, TailWait = TimeSpan.FromMilliseconds(200) });
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        await NextAsync(events);

        Cluster.Groups.Queue(new CoordinatorMessage { Fenced = new Fenced { SegmentId = 1, Reason = "test" } });
        await WaitUntilAsync(() => Cluster.Groups.QueuedCount == 0, "the fence is handed out");
        await ExchangesAsync(1);
        var afterFence = Cluster.Groups.Received.Count;

        var read = new List<string>();
        var reading = Task.Run(async () =>
        {
            while (await events.MoveNextAsync())
            {
                lock (read)
                {
                    read.Add(events.Current.Value);
                }
            }
        });
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Completed).Any(m => m.Completed.Position.SegmentId == 2), "the other segment is completed");
        await ExchangesAsync(2);
        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        await reading.WaitAsync(Patience);

        lock (read)
        {
            Assert.DoesNotContain(read, v => v.StartsWith('f'));
        }

        Assert.DoesNotContain(Cluster.Groups.Received.Skip(afterFence), m => m.KindCase is ReaderMessage.KindOneofCase.Commit or ReaderMessage.KindOneofCase.Release or ReaderMessage.KindOneofCase.Completed && PositionOf(m).SegmentId == 1);
    }

    [Fact]
    public async Task End_of_group_ends_the_enumeration_after_a_final_commit_of_what_was_consumed()
    {
        var values = Named("a", 3);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader();
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        for (var i = 0; i < 3; i++)
        {
            await NextAsync(events);
        }

        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        await WaitUntilAsync(() => Cluster.Groups.QueuedCount == 0, "the end of the group is handed out");
        await ExchangesAsync(2);
        Assert.DoesNotContain(Sent(ReaderMessage.KindOneofCase.Commit), m => m.Commit.Position.Offset == offsets[3]);

        // The last event is processed when the application asks for more; the enumeration ends once that is committed.
        Assert.False(await events.MoveNextAsync().AsTask().WaitAsync(Patience));
        Assert.Contains(Sent(ReaderMessage.KindOneofCase.Commit), m => m.Commit.Position.Offset == offsets[3]);
    }

    [Fact]
    public async Task The_reader_exchanges_at_least_every_heartbeat_interval()
    {
        Cluster.Groups.HeartbeatIntervalMs = 300;
        await using var reader = Reader();
        using var stop = new CancellationTokenSource();
        var events = reader.ReadAsync(stop.Token).GetAsyncEnumerator();
        var next = events.MoveNextAsync().AsTask();
        await WaitUntilAsync(() => Cluster.Groups.Exchanges.Count >= 10, "ten exchanges");
        var times = Cluster.Groups.Exchanges;
        // About every third of the interval, and never so late that the session (at least twice the interval) is at
        // risk, even on a loaded machine.
        var gaps = times.Zip(times.Skip(1), (a, b) => b - a).Order().ToList();
        Assert.True(gaps[gaps.Count / 2] < TimeSpan.FromMilliseconds(150), $"The median gap between exchanges was {gaps[gaps.Count / 2].TotalMilliseconds} ms.");
        Assert.True(gaps[^1] < TimeSpan.FromMilliseconds(600), $"The longest gap between exchanges was {gaps[^1].TotalMilliseconds} ms.");
        Assert.Single(Sent(ReaderMessage.KindOneofCase.Join));
        Assert.NotEmpty(Sent(ReaderMessage.KindOneofCase.Heartbeat));
        Assert.False(next.IsCompleted);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(Patience));
        await events.DisposeAsync();
    }

    [Fact]
    public async Task A_fenced_session_joins_again_and_disposal_leaves_with_the_final_commits()
    {
        var values = Named("a", 4);
        var offsets = Offsets(values);
        var first = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(first, 1, Epoch));
        var reader = Reader();
        var events = reader.ReadAsync().GetAsyncEnumerator();
        await NextAsync(events);

        Cluster.Groups.Queue(new CoordinatorMessage { Fenced = new Fenced { SegmentId = 0, Reason = "session expired" } });
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Join).Count == 2, "the reader joins again");
        Cluster.Groups.Queue(FakeReaderGroups.Assign(first, 1, Epoch + 1, start: offsets[2]));
        var resumed = await NextAsync(events);
        Assert.Equal(values[2], resumed.Value);

        await events.DisposeAsync();
        await reader.DisposeAsync();
        var leave = Assert.Single(Sent(ReaderMessage.KindOneofCase.Leave)).Leave;
        Assert.Equal(2, leave.SessionEpoch);
        var position = Assert.Single(leave.Positions);
        Assert.Equal(offsets[3], position.Offset);
    }

    [Fact]
    public async Task In_manual_mode_only_what_the_application_commits_is_committed()
    {
        var values = Named("a", 5);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = Reader(new GroupReaderOptions { AutoCommit = false, ReadSize = 1024, TailWait = TimeSpan.FromMilliseconds(200) });
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        var read = new List<EventRead<string>>();
        for (var i = 0; i < 4; i++)
        {
            read.Add(await NextAsync(events));
        }

        await reader.CommitAsync(read[1].Position).WaitAsync(Patience);
        Assert.Equal(offsets[2], Sent(ReaderMessage.KindOneofCase.Commit).Max(m => m.Commit.Position.Offset));
        await ExchangesAsync(3);
        Assert.Equal(offsets[2], Sent(ReaderMessage.KindOneofCase.Commit).Max(m => m.Commit.Position.Offset));
        Assert.Throws<ArgumentException>(() => reader.Commit(read[3] with { Position = read[3].Position with { NextOffset = offsets[5] } }));
    }
}
