using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Tests.Fakes;
using Streams.Contracts.Controller;
using ReaderGroupConfig = Streams.Client.ReaderGroups.ReaderGroupConfig;

namespace Streams.Client.Tests.ReaderGroups;

/// <summary>
/// A group reader answers checkpoint requests at once with what its application processed, and a reset of its group
/// (fence, then assignment again) makes it read the segment again from the reset's cut, dropping what it had buffered.
/// </summary>
public sealed class GroupReaderCheckpointTests : GroupReaderTestBase
{
    /// <summary>The exchange that handed out checkpoint request <paramref name="name"/> (the <paramref name="nth"/> one of that name), and the one after it.</summary>
    private async Task<(FakeExchange Request, FakeExchange Next)> CheckpointExchangesAsync(string name, int nth)
    {
        bool Asked(FakeExchange e) => e.Sent.Any(m => m.KindCase == CoordinatorMessage.KindOneofCase.Checkpoint && m.Checkpoint.Name == name);
        await WaitUntilAsync(() => Cluster.Groups.ExchangeLog.Count(Asked) >= nth && !Asked(Cluster.Groups.ExchangeLog[^1]), $"checkpoint {name} was asked for {nth} times and an exchange followed");
        var log = Cluster.Groups.ExchangeLog;
        var index = log.Select((e, i) => (e, i)).Where(p => Asked(p.e)).ElementAt(nth - 1).i;
        return (log[index], log[index + 1]);
    }

    private static CheckpointAck AckIn(FakeExchange exchange, string name) =>
        Assert.Single(exchange.Received, m => m.KindCase == ReaderMessage.KindOneofCase.CheckpointAck && m.CheckpointAck.Name == name).CheckpointAck;

    private static Dictionary<long, long> Positions(CheckpointAck ack) => ack.Positions.ToDictionary(p => p.SegmentId, p => p.Offset);

    [Fact]
    public async Task A_checkpoint_is_acknowledged_by_the_next_exchange_with_the_committed_positions_of_every_held_segment_and_again_when_repeated()
    {
        // Heartbeats every 2 s: an answer that waited for one would come a whole period after the request.
        Cluster.Groups.HeartbeatIntervalMs = 6000;
        var a = Named("a", 10);
        var b = Named("b", 3);
        var c = Named("c", 2);
        var (offsetsA, offsetsB, offsetsC) = (Offsets(a), Offsets(b), Offsets(c));
        var (segmentA, segmentB, segmentC, segmentD) = (Segment(0, a, seal: false), Segment(1, b, seal: false), Segment(2, c, seal: false), Segment(3, Named("d", 2), seal: false));
        Cluster.Groups.Queue(
            FakeReaderGroups.Assign(segmentA, 1, Epoch),
            FakeReaderGroups.Assign(segmentB, 2, Epoch),
            FakeReaderGroups.Assign(segmentC, 3, Epoch, start: offsetsC[1]),
            // Nothing to read: completed at once, so no longer held when the checkpoint comes.
            FakeReaderGroups.Assign(segmentD, 4, Epoch, start: 40, end: 40));
        await using var reader = Reader(new GroupReaderOptions { AutoCommit = false, ReadSize = 1024, TailWait = TimeSpan.FromMilliseconds(200) });
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        var read = new List<EventRead<string>>();
        for (var i = 0; i < a.Length + b.Length + 1; i++)
        {
            read.Add(await NextAsync(events));
        }

        // Everything was handed over, but only what the application committed counts.
        reader.Commit(read.Single(e => e.Value == a[4]));
        reader.Commit(read.Single(e => e.Value == b[0]));
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Completed).Any(m => m.Completed.Position.SegmentId == 4), "the empty assignment is completed");
        Assert.Equal(40, Sent(ReaderMessage.KindOneofCase.Completed).Single(m => m.Completed.Position.SegmentId == 4).Completed.Position.Offset);
        Cluster.Groups.Queue(new CoordinatorMessage { Checkpoint = new CheckpointRequest { Name = "cp-1" } });

        var (request, next) = await CheckpointExchangesAsync("cp-1", 1);
        var ack = AckIn(next, "cp-1");
        Assert.True(next.At - request.At < TimeSpan.FromSeconds(1), $"The acknowledgement came {(next.At - request.At).TotalMilliseconds} ms after the request.");
        Assert.Equal(1, ack.SessionEpoch);
        Assert.Equal(new Dictionary<long, long> { [1] = offsetsA[5], [2] = offsetsB[1], [3] = offsetsC[1] }, Positions(ack));
        Assert.Equal([segmentA.Name, segmentB.Name, segmentC.Name], ack.Positions.OrderBy(p => p.SegmentId).Select(p => p.Segment));
        // The commits the checkpoint counts reached the controller no later than the acknowledgement.
        var received = Cluster.Groups.Received.ToList();
        var ackAt = received.FindIndex(m => m.KindCase == ReaderMessage.KindOneofCase.CheckpointAck);
        Assert.InRange(received.FindIndex(m => m.KindCase == ReaderMessage.KindOneofCase.Commit && m.Commit.Position.SegmentId == 1 && m.Commit.Position.Offset == offsetsA[5]), 0, ackAt);
        Assert.InRange(received.FindIndex(m => m.KindCase == ReaderMessage.KindOneofCase.Commit && m.Commit.Position.SegmentId == 2 && m.Commit.Position.Offset == offsetsB[1]), 0, ackAt);

        // Asked again under the same name (the controller did not hear the answer): answered again, as things are now.
        reader.Commit(read.Single(e => e.Value == a[9]));
        Cluster.Groups.Queue(new CoordinatorMessage { Checkpoint = new CheckpointRequest { Name = "cp-1" } });
        (request, next) = await CheckpointExchangesAsync("cp-1", 2);
        Assert.True(next.At - request.At < TimeSpan.FromSeconds(1), $"The second acknowledgement came {(next.At - request.At).TotalMilliseconds} ms after the request.");
        Assert.Equal(new Dictionary<long, long> { [1] = offsetsA[10], [2] = offsetsB[1], [3] = offsetsC[1] }, Positions(AckIn(next, "cp-1")));
        Assert.Equal(2, Sent(ReaderMessage.KindOneofCase.CheckpointAck).Count);
    }

    [Fact]
    public async Task A_checkpoint_through_the_client_holds_what_the_application_moved_past_and_a_reset_to_it_reads_again_from_there_dropping_the_buffered_events()
    {
        var values = Named("a", 8);
        var offsets = Offsets(values);
        var segment = Segment(0, values, seal: false);
        Assert.True(await Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s")));
        var group = Client.GetReaderGroup("test", "g");
        Cluster.Groups.Queue(FakeReaderGroups.Assign(segment, 1, Epoch));
        await using var reader = group.CreateReader("r1", Serialization.Serializers.Utf8, new GroupReaderOptions { ReadSize = 1024, TailWait = TimeSpan.FromMilliseconds(200) });
        await using var events = reader.ReadAsync().GetAsyncEnumerator();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(values[i], (await NextAsync(events)).Value);
        }

        // Events 0 and 1 are processed; event 2 is in the application's hands, 3 to 7 are buffered.
        Cluster.Groups.FailUnavailable(1);
        var checkpoint = await group.CheckpointAsync("cp-1", TimeSpan.FromSeconds(20));
        Assert.True(checkpoint.Complete);
        Assert.Equal("cp-1", checkpoint.Name);
        var cut = Assert.Single(checkpoint.Cuts);
        Assert.Equal(("test", "s"), (cut.Scope, cut.Stream));
        Assert.Equal(new Dictionary<long, long> { [1] = offsets[2] }, cut.Positions);
        Assert.InRange(checkpoint.CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow);

        var described = Assert.Single((await group.DescribeAsync()).Checkpoints);
        Assert.Equal(("cp-1", true), (described.Name, described.Complete));
        Assert.Equal(offsets[2], Assert.Single(described.Cuts).Positions[1]);
        // An existing name returns that checkpoint: the readers are not asked again.
        Assert.Equal(offsets[2], (await group.CheckpointAsync("cp-1")).Cuts[0].Positions[1]);
        Assert.Single(Cluster.Groups.ExchangeLog, e => e.Sent.Any(m => m.KindCase == CoordinatorMessage.KindOneofCase.Checkpoint));

        // Reset to the checkpoint: the fake fences the segment and assigns it again from the cut under the next owner epoch.
        Assert.Equal(2, (await group.ResetAsync(checkpoint)).Generation);
        await WaitUntilAsync(() => Cluster.Groups.QueuedCount == 0, "the fence and the new assignment are handed out");
        await ExchangesAsync(1);
        var afterReset = new List<EventRead<string>>();
        for (var i = 2; i < values.Length; i++)
        {
            afterReset.Add(await NextAsync(events));
        }

        // Event 2 again, not event 3 from the old assignment's buffer: read again from the cut, in order.
        Assert.Equal(values[2..], afterReset.Select(e => e.Value));
        Assert.Equal(offsets[2], afterReset[0].Position.Offset);
        var next = events.MoveNextAsync().AsTask();
        await WaitUntilAsync(() => Sent(ReaderMessage.KindOneofCase.Commit).Any(m => m.Commit.OwnerEpoch == Epoch + 1 && m.Commit.Position.Offset == offsets[8]), "the new assignment's commits reach the controller");
        // Nothing of the old assignment was committed past the cut (event 2 was in hand when it was fenced).
        Assert.All(Sent(ReaderMessage.KindOneofCase.Commit).Where(m => m.Commit.OwnerEpoch == Epoch), m => Assert.True(m.Commit.Position.Offset <= offsets[2], $"The fenced assignment committed {m.Commit.Position.Offset}."));
        Assert.False(next.IsCompleted, "An event was yielded twice after the reset.");

        Cluster.Groups.Queue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        Assert.False(await next.WaitAsync(Patience));
    }
}
