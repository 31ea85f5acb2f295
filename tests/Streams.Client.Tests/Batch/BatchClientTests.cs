using System.Text.Json;
using Grpc.Core;
using Streams.Client.Batch;
using Streams.Client.Serialization;
using Streams.Client.Tests.Fakes;

namespace Streams.Client.Tests.Batch;

/// <summary>
/// The batch client against a fake controller and segment store: ranges between cuts across epochs, with byte offsets
/// the store confirms; each range read alone or many read ahead in parallel, delivered in the listed order.
/// </summary>
public sealed class BatchClientTests : FakeClusterTest
{
    private static IEnumerable<string> Named(string prefix, int count) => Enumerable.Range(0, count).Select(i => $"{prefix}{i}");

    private static long FrameSize(string value) => FakeEvents.Frame(value).Length;

    /// <summary>Epoch 0: a [0, 0.5) and b [0.5, 1), merged in epoch 1 into c [0, 1); a and b sealed.</summary>
    private (FakeSegment A, FakeSegment B, FakeSegment C) ScaledStream()
    {
        var a = Cluster.AddSegment(0, 0, 0, 0.5);
        var b = Cluster.AddSegment(0, 1, 0.5, 1);
        var c = Cluster.AddSegment(1, 2, 0, 1, (0, 0), (0, 1));
        a.Write(FakeEvents.Frames(Named("a", 10)));
        b.Write(FakeEvents.Frames(Named("b", 30)));
        c.Write(FakeEvents.Frames(Named("c", 5)));
        a.Seal();
        b.Seal();
        Cluster.Controller.CompleteScale(1, a.Name, b.Name);
        return (a, b, c);
    }

    private async Task<List<string>> ReadAsync(IReadOnlyList<SegmentRange> ranges, BatchReadOptions? options = null)
    {
        var read = new List<string>();
        await foreach (var e in Client.Batch.ReadRangesAsync(ranges, Serializers.Utf8, options).WithCancellation(new CancellationTokenSource(Patience).Token))
        {
            read.Add(e.Value);
        }

        return read;
    }

    [Fact]
    public async Task Without_cuts_the_ranges_are_every_segment_whole_and_read_in_segment_order()
    {
        var (a, b, c) = ScaledStream();

        var ranges = await Client.Batch.ListRangesAsync("test", "s");

        Assert.Equal([a.Name, b.Name, c.Name], ranges.Select(r => r.Segment));
        Assert.Equal([(0L, (long)a.Data.Length), (0L, b.Data.Length), (0L, c.Data.Length)], ranges.Select(r => (r.StartOffset, r.EndOffset)));
        Assert.Equal([0, 0, 1], ranges.Select(r => r.Epoch));
        Assert.Equal([.. Named("a", 10), .. Named("b", 30), .. Named("c", 5)], await ReadAsync(ranges));
    }

    [Fact]
    public async Task Ranges_between_cuts_across_epochs_hold_exactly_the_events_between_them()
    {
        var (a, b, c) = ScaledStream();
        var a3 = FakeEvents.Frames(Named("a", 3)).Length;
        var b20 = FakeEvents.Frames(Named("b", 20)).Length;
        var c2 = FakeEvents.Frames(Named("c", 2)).Length;
        var from = new StreamCut("test", "s", new Dictionary<long, long> { [FakeController.IdOf(0, 0)] = a3, [FakeController.IdOf(0, 1)] = b20 });
        var to = new StreamCut("test", "s", new Dictionary<long, long> { [FakeController.IdOf(1, 2)] = c2 });

        var ranges = await Client.Batch.ListRangesAsync("test", "s", from, to);

        Assert.Equal([(a.Name, (long)a3, (long)a.Data.Length), (b.Name, b20, b.Data.Length), (c.Name, 0, c2)], ranges.Select(r => (r.Segment, r.StartOffset, r.EndOffset)));
        Assert.Equal([.. Named("a", 10).Skip(3), .. Named("b", 30).Skip(20), "c0", "c1"], await ReadAsync(ranges));
    }

    [Fact]
    public async Task Ranges_are_plain_data_a_worker_elsewhere_reads_from_their_json()
    {
        ScaledStream();
        var json = JsonSerializer.Serialize(await Client.Batch.ListRangesAsync("test", "s"));

        // Another client, as another process would have it: only the JSON crosses over.
        await using var worker = Cluster.CreateClient();
        var ranges = JsonSerializer.Deserialize<List<SegmentRange>>(json)!;
        var read = new List<string>();
        foreach (var range in ranges)
        {
            await foreach (var e in worker.Batch.ReadRangeAsync(range, Serializers.Utf8))
            {
                Assert.Equal(range.Segment, e.Position.Segment);
                Assert.InRange(e.Position.Offset, range.StartOffset, range.EndOffset - 1);
                read.Add(e.Value);
            }
        }

        Assert.DoesNotContain("\"length\"", json, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(45, read.Count);
        Assert.Equal(await ReadAsync(ranges), read);
    }

    [Fact]
    public async Task Reading_ahead_in_parallel_keeps_the_listed_order_when_an_earlier_range_is_slow()
    {
        var segments = Enumerable.Range(0, 6).Select(i => Cluster.AddSegment(0, i, i / 6.0, (i + 1) / 6.0)).ToList();
        foreach (var (segment, i) in segments.Select((s, i) => (s, i)))
        {
            segment.Write(FakeEvents.Frames(Named($"s{i}-", 20)));
        }

        segments[0].ReadDelay = TimeSpan.FromMilliseconds(30);
        var ranges = await Client.Batch.ListRangesAsync("test", "s");

        var read = await ReadAsync(ranges, new BatchReadOptions { ReadSize = 1024, Parallelism = 3, BufferedReads = 1 });

        Assert.Equal(Enumerable.Range(0, 6).SelectMany(i => Named($"s{i}-", 20)), read);
    }

    [Fact]
    public async Task A_truncated_head_is_not_listed_and_an_empty_segment_gives_no_range()
    {
        var a = Cluster.AddSegment(0, 0, 0, 0.5);
        Cluster.AddSegment(0, 1, 0.5, 1);
        a.Write(FakeEvents.Frames(Named("a", 4)));
        a.Truncate(FrameSize("a0"));

        var ranges = await Client.Batch.ListRangesAsync("test", "s");

        var range = Assert.Single(ranges);
        Assert.Equal((FrameSize("a0"), (long)a.Data.Length), (range.StartOffset, range.EndOffset));
        Assert.Equal(["a1", "a2", "a3"], await ReadAsync(ranges));
    }

    [Fact]
    public async Task A_range_truncated_after_it_was_listed_fails_its_reader_instead_of_skipping()
    {
        var a = Cluster.AddSegment(0, 0, 0, 1);
        a.Write(FakeEvents.Frames(Named("a", 4)));
        var ranges = await Client.Batch.ListRangesAsync("test", "s");
        a.Truncate(FakeEvents.Frames(Named("a", 2)).Length);

        var e = await Assert.ThrowsAsync<StreamsException>(() => ReadAsync(ranges));

        Assert.Equal(StatusCode.DataLoss, e.StatusCode);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public async Task A_cut_beyond_a_segments_data_or_of_another_stream_is_refused()
    {
        var (a, b, _) = ScaledStream();
        var beyond = new StreamCut("test", "s", new Dictionary<long, long> { [FakeController.IdOf(0, 0)] = a.Data.Length + 1, [FakeController.IdOf(0, 1)] = 0 });
        Assert.Contains("beyond its length", (await Assert.ThrowsAsync<ArgumentException>(() => Client.Batch.ListRangesAsync("test", "s", to: beyond))).Message);

        var other = new StreamCut("test", "other", new Dictionary<long, long> { [FakeController.IdOf(0, 0)] = 0, [FakeController.IdOf(0, 1)] = b.Data.Length });
        Assert.Contains("not of test/s", (await Assert.ThrowsAsync<ArgumentException>(() => Client.Batch.ListRangesAsync("test", "s", other))).Message);
    }
}
