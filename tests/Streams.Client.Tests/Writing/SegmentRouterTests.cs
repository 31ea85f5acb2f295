using System.Globalization;
using Grpc.Core;
using Streams.Client.Serialization;
using Streams.Client.Tests.Fakes;
using Streams.Client.Writing;
using Streams.Common.Hashing;

namespace Streams.Client.Tests.Writing;

/// <summary>
/// A writer follows a scale: the events a sealed segment did not make durable move to its successors in order, ahead
/// of newer events for the same keys, and none is stored twice. Runs against a fake controller and segment store whose
/// timing the test controls.
/// </summary>
public sealed class SegmentRouterTests : FakeClusterTest
{
    private static EventWriterOptions SmallBlocks(Guid writerId) => new()
    {
        WriterId = writerId,
        StoreRoutingKeys = true,
        MaxBlockSize = 1024,
        Linger = TimeSpan.FromMilliseconds(2),
    };

    /// <summary>Values "key:index:padding", so that a few make a block.</summary>
    private static string Value(int index, int keys) => $"k{index % keys}:{index}:{new string('x', 80)}";

    private static int IndexOf(string value) => int.Parse(value.Split(':')[1], CultureInfo.InvariantCulture);

    [Fact]
    public async Task Unacknowledged_events_of_a_sealed_segment_move_to_its_successors_in_order_ahead_of_newer_ones()
    {
        var writerId = Guid.NewGuid();
        var sealedSegment = Cluster.AddSegment(0, 0, 0, 1);
        var low = Cluster.AddSegment(1, 1, 0, 0.5, (0, 0));
        var high = Cluster.AddSegment(1, 2, 0.5, 1, (0, 0));
        low.SetLast(writerId, 100);
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(writerId));

        const int Keys = 8;
        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => writer.WriteEventAsync("k" + (i % Keys), Value(i, Keys))));
        sealedSegment.Hold();
        var inflight = Enumerable.Range(40, 80).Select(i => writer.WriteEventAsync("k" + (i % Keys), Value(i, Keys))).ToList();
        await WaitUntilAsync(() => sealedSegment.HeldCount >= 4, "the writer has blocks in flight");

        // Two of the blocks in flight become durable, but their acknowledgements are lost; the rest are rejected. The
        // controller names the successors only after a few empty answers, as while the scale completes.
        Cluster.Controller.AnswerEmpty(sealedSegment.Name, 6);
        sealedSegment.Seal(durable: 2);
        Cluster.Controller.CompleteScale(1, sealedSegment.Name);
        var newer = Enumerable.Range(120, 20).Select(i => writer.WriteEventAsync("k" + (i % Keys), Value(i, Keys))).ToList();

        // While the writer waits for the successors, its key ranges are held: these wait behind the moved events.
        await WaitUntilAsync(() => Volatile.Read(ref Cluster.Controller.SuccessorCalls) >= 1, "the writer asks for the successors");
        newer.AddRange(Enumerable.Range(140, 20).Select(i => writer.WriteEventAsync("k" + (i % Keys), Value(i, Keys))));
        Assert.All(newer.Skip(20), w => Assert.False(w.IsCompleted, "A write completed while its key range was held."));
        await Task.WhenAll(inflight.Concat(newer)).WaitAsync(Patience);

        var before = FakeEvents.Parse(sealedSegment.Data);
        var moved = FakeEvents.Parse(low.Data).Concat(FakeEvents.Parse(high.Data)).ToList();
        Assert.Equal(Enumerable.Range(0, 160), before.Concat(moved).Select(e => IndexOf(e.Value)).Order());
        Assert.True(before.Count > 40, $"The durable blocks whose acknowledgements were lost stay in the sealed segment ({before.Count} events there).");
        Assert.Equal(Enumerable.Range(0, before.Count), before.Select(e => IndexOf(e.Value)));
        foreach (var key in before.Concat(moved).GroupBy(e => e.Key))
        {
            var order = key.Select(e => IndexOf(e.Value)).ToList();
            Assert.True(order.SequenceEqual(order.Order()), $"Key {key.Key} is out of order across the scale: {string.Join(",", order)}");
            var successor = KeySpace.PointOf(key.Key!) < 0.5 ? low : high;
            Assert.All(key.Where(e => IndexOf(e.Value) >= before.Count), e => Assert.Contains(e, FakeEvents.Parse(successor.Data)));
        }

        // Writer numbers continue after each successor's own record for this writer id.
        var lowNumbers = low.Blocks.Select(b => b.LastEventNumber).ToList();
        Assert.True(lowNumbers[0] - low.Blocks[0].EventCount + 1 == 101, $"The first block moved to a successor that knew event 100 is numbered from {lowNumbers[0] - low.Blocks[0].EventCount + 1}.");
        Assert.Equal(lowNumbers.Order(), lowNumbers);
        Assert.Equal(high.Blocks[0].EventCount - 1, high.Blocks[0].LastEventNumber);
        Assert.Equal([low.Name, high.Name], writer.Segments.Order());
        Assert.Equal(0, writer.BufferedBytes);
    }

    [Fact]
    public async Task A_write_racing_a_move_lands_behind_the_moved_and_waiting_events_of_its_key()
    {
        var sealedSegment = Cluster.AddSegment(0, 0, 0, 1);
        var successor = Cluster.AddSegment(1, 1, 0, 1, (0, 0));
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(Guid.NewGuid()));
        sealedSegment.Hold();
        var writes = Enumerable.Range(0, 30).Select(i => writer.WriteEventAsync("k", Value(i, 1))).ToList();
        await WaitUntilAsync(() => sealedSegment.HeldCount >= 2, "the writer has blocks in flight");

        // While the writer waits for the successors, the key's range is held: these wait behind the moved events.
        Cluster.Controller.AnswerEmpty(sealedSegment.Name, 4);
        sealedSegment.Seal();
        Cluster.Controller.CompleteScale(1, sealedSegment.Name);
        await WaitUntilAsync(() => Volatile.Read(ref Cluster.Controller.SuccessorCalls) >= 1, "the writer asks for the successors");
        writes.AddRange(Enumerable.Range(30, 10).Select(i => writer.WriteEventAsync("k", Value(i, 1))));

        // In the middle of the move another thread writes the key's next event. It must wait for the move to finish
        // (a write that found the new table early went ahead of the waiting events).
        Task<Task>? racing = null;
        writer.Router.ReroutedForTests = () =>
        {
            if (racing is null)
            {
                racing = Task.Factory.StartNew(() => writer.WriteEventAsync("k", Value(40, 1)), CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default);
                racing.Wait(TimeSpan.FromMilliseconds(500));
            }
        };
        await Task.WhenAll(writes).WaitAsync(Patience);
        await WaitUntilAsync(() => racing is not null, "the move ran");
        await (await racing!).WaitAsync(Patience);

        var stored = FakeEvents.Parse(sealedSegment.Data).Concat(FakeEvents.Parse(successor.Data)).Select(e => IndexOf(e.Value)).ToList();
        Assert.Equal(Enumerable.Range(0, 41), stored);
    }

    [Fact]
    public async Task Events_of_merged_segments_reach_the_successor_in_sequence_order_and_none_is_dropped()
    {
        var writerId = Guid.NewGuid();
        var left = Cluster.AddSegment(0, 0, 0, 0.5);
        var right = Cluster.AddSegment(0, 1, 0.5, 1);
        var merged = Cluster.AddSegment(1, 2, 0, 1, (0, 0), (0, 1));
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(writerId));

        left.Hold();
        right.Hold();
        const int Keys = 16;
        var writes = Enumerable.Range(0, 120).Select(i => writer.WriteEventAsync("k" + (i % Keys), Value(i, Keys), i)).ToList();
        await WaitUntilAsync(() => left.HeldCount >= 2 && right.HeldCount >= 2, "both segments have blocks in flight");
        left.Seal(durable: 1);
        right.Seal();
        Cluster.Controller.CompleteScale(1, left.Name, right.Name);
        await Task.WhenAll(writes).WaitAsync(Patience);

        var stored = FakeEvents.Parse(left.Data).Concat(FakeEvents.Parse(right.Data)).Concat(FakeEvents.Parse(merged.Data)).Select(e => IndexOf(e.Value));
        Assert.Equal(Enumerable.Range(0, 120), stored.Order());
        var sequences = merged.Blocks.Select(b => b.LastEventNumber).ToList();
        Assert.Equal(sequences.Order(), sequences);
        Assert.Equal([merged.Name], writer.Segments);
        Assert.Equal(0, writer.BufferedBytes);
    }

    [Fact]
    public async Task Application_sequences_inside_an_inherited_range_are_not_sent_again()
    {
        var writerId = Guid.NewGuid();
        Cluster.AddSegment(0, 0, 0, 1);
        var low = Cluster.AddSegment(1, 1, 0, 0.5, (0, 0));
        var high = Cluster.AddSegment(1, 2, 0.5, 1, (0, 0));
        Cluster.Controller.CompleteScale(1, FakeController.NameOf(0, 0));
        low.Inherit(writerId, 0, 0.5, 19);
        high.Inherit(writerId, 0.5, 1, 9);

        // A writer restarted after the scale writes its events again: the successors know what their predecessor held.
        await using (var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(writerId)))
        {
            await Task.WhenAll(Enumerable.Range(0, 30).Select(i => writer.WriteEventAsync("k" + (i % 8), Value(i, 8), i))).WaitAsync(Patience);
            Assert.Equal(0, writer.BufferedBytes);
        }

        var expectedLow = Enumerable.Range(20, 10).Where(i => KeySpace.PointOf("k" + (i % 8)) < 0.5);
        var expectedHigh = Enumerable.Range(10, 20).Where(i => KeySpace.PointOf("k" + (i % 8)) >= 0.5);
        Assert.Equal(expectedLow, FakeEvents.Parse(low.Data).Select(e => IndexOf(e.Value)));
        Assert.Equal(expectedHigh, FakeEvents.Parse(high.Data).Select(e => IndexOf(e.Value)));
    }

    [Fact]
    public async Task Events_of_a_segment_sealed_with_its_stream_fail_with_StreamSealedException()
    {
        var only = Cluster.AddSegment(0, 0, 0, 1);
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(Guid.NewGuid()));
        await writer.WriteEventAsync("k", "durable");
        only.Hold();
        var writes = Enumerable.Range(0, 30).Select(i => writer.WriteEventAsync("k" + i, Value(i, 30))).ToList();
        await WaitUntilAsync(() => only.HeldCount >= 1, "the writer has blocks in flight");
        Cluster.Controller.SealStream();
        only.Seal();

        foreach (var write in writes)
        {
            await Assert.ThrowsAsync<StreamSealedException>(() => write.WaitAsync(Patience));
        }

        await Assert.ThrowsAsync<StreamSealedException>(() => writer.WriteEventAsync("k", "after").WaitAsync(Patience));
        Assert.Equal(["durable"], FakeEvents.Parse(only.Data).Select(e => e.Value));
        Assert.Equal(0, writer.BufferedBytes);
    }

    [Fact]
    public async Task Each_block_carries_the_key_sample_of_its_event_relative_to_the_segment_range()
    {
        Cluster.AddSegment(0, 0, 0, 0.5);
        var high = Cluster.AddSegment(0, 1, 0.5, 1);
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(Guid.NewGuid()));
        var keys = Enumerable.Range(0, 40).Select(i => "key-" + i).Where(k => KeySpace.PointOf(k) >= 0.5).Take(5).ToList();
        foreach (var key in keys)
        {
            // One at a time: each event is a block of its own.
            await writer.WriteEventAsync(key, "v");
        }

        var expected = keys.Select(k => 1 + (ulong)((KeySpace.PointOf(k) - 0.5) / 0.5 * 4294967296.0));
        Assert.Equal(expected, high.Blocks.Select(b => b.KeySample));
    }

    [Fact]
    public async Task Events_without_a_routing_key_move_to_the_successors_exactly_once()
    {
        var sealedSegment = Cluster.AddSegment(0, 0, 0, 1);
        var low = Cluster.AddSegment(1, 1, 0, 0.5, (0, 0));
        var high = Cluster.AddSegment(1, 2, 0.5, 1, (0, 0));
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(Guid.NewGuid()));
        sealedSegment.Hold();
        var writes = Enumerable.Range(0, 60).Select(i => writer.WriteEventAsync(Value(i, 1))).ToList();
        await WaitUntilAsync(() => sealedSegment.HeldCount >= 2, "the writer has blocks in flight");
        sealedSegment.Seal();
        Cluster.Controller.CompleteScale(1, sealedSegment.Name);
        await Task.WhenAll(writes).WaitAsync(Patience);

        var moved = FakeEvents.Parse(low.Data).Concat(FakeEvents.Parse(high.Data)).Select(e => IndexOf(e.Value)).ToList();
        Assert.Empty(sealedSegment.Data);
        Assert.Equal(Enumerable.Range(0, 60), moved.Order());
        Assert.All(low.Blocks.Concat(high.Blocks), b => Assert.Equal(0UL, b.KeySample));
        Assert.Equal(0, writer.BufferedBytes);
    }

    [Theory]
    [InlineData(StatusCode.DeadlineExceeded)]
    [InlineData(StatusCode.Unavailable)]
    public async Task A_controller_that_fails_while_a_writer_asks_for_successors_is_asked_again_and_no_event_fails(StatusCode code)
    {
        var sealedSegment = Cluster.AddSegment(0, 0, 0, 1);
        var low = Cluster.AddSegment(1, 1, 0, 0.5, (0, 0));
        var high = Cluster.AddSegment(1, 2, 0.5, 1, (0, 0));
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, SmallBlocks(Guid.NewGuid()));
        sealedSegment.Hold();
        var writes = Enumerable.Range(0, 40).Select(i => writer.WriteEventAsync("k" + (i % 4), Value(i, 4))).ToList();
        await WaitUntilAsync(() => sealedSegment.HeldCount >= 2, "the writer has blocks in flight");

        // More failures than one call's own retries over the controllers (and the fake is the only controller).
        Cluster.Controller.FailSuccessors(sealedSegment.Name, 12, code);
        sealedSegment.Seal();
        Cluster.Controller.CompleteScale(1, sealedSegment.Name);
        await Task.WhenAll(writes).WaitAsync(Patience);

        var moved = FakeEvents.Parse(low.Data).Concat(FakeEvents.Parse(high.Data)).Select(e => IndexOf(e.Value)).ToList();
        Assert.Equal(Enumerable.Range(0, 40), moved.Order());
        Assert.True(Volatile.Read(ref Cluster.Controller.SuccessorCalls) > 12, "The successors were not asked for again after the failures.");
    }
}
