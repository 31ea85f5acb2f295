using Google.Protobuf;
using Streams.Contracts.SegmentStore;
using Streams.Controller.Streams;

namespace Streams.Controller.Tests.Streams;

public sealed class WriterInheritanceTests
{
    private static readonly ByteString WriterA = ByteString.CopyFrom(Enumerable.Repeat((byte)0xA, 16).ToArray());
    private static readonly ByteString WriterB = ByteString.CopyFrom(Enumerable.Repeat((byte)0xB, 16).ToArray());

    private static WriterRecord Own(ByteString writer, long last, params (double Start, double End, long Last)[] inherited)
    {
        var record = new WriterRecord { WriterId = writer, LastEventNumber = last };
        record.Inherited.AddRange(inherited.Select(r => new InheritedWriterRange { KeyStart = r.Start, KeyEnd = r.End, LastEventNumber = r.Last }));
        return record;
    }

    private static WriterInheritance.Predecessor Of(double start, double end, params WriterRecord[] writers) => new(new KeyRangeRecord(start, end), writers);

    private static (double, double, long)[] Ranges(IReadOnlyList<WriterRecord> records, ByteString writer) =>
        [.. records.Single(r => r.WriterId == writer).Inherited.Select(r => (r.KeyStart, r.KeyEnd, r.LastEventNumber))];

    [Fact]
    public void A_split_gives_each_piece_its_parents_last_on_its_own_keys()
    {
        var parent = Of(0.5, 1, Own(WriterA, 10), Own(WriterB, -1));
        var low = WriterInheritance.Compute(new(0.5, 0.75), [parent]);
        var high = WriterInheritance.Compute(new(0.75, 1), [parent]);
        Assert.Equal([(0.5, 0.75, 10L)], Ranges(low, WriterA));
        Assert.Equal([(0.75, 1.0, 10L)], Ranges(high, WriterA));
        Assert.DoesNotContain(low, r => r.WriterId == WriterB); // it never wrote there: nothing to inherit
        Assert.All(low, r => Assert.Equal(-1, r.LastEventNumber));
    }

    [Fact]
    public void A_merge_keeps_each_predecessors_last_on_its_own_keys()
    {
        var left = Of(0, 0.5, Own(WriterA, 7));
        var right = Of(0.5, 1, Own(WriterA, 900), Own(WriterB, 3));
        var merged = WriterInheritance.Compute(new(0, 1), [left, right]);
        Assert.Equal([(0.0, 0.5, 7L), (0.5, 1.0, 900L)], Ranges(merged, WriterA));
        Assert.Equal([(0.5, 1.0, 3L)], Ranges(merged, WriterB));
    }

    [Fact]
    public void A_split_after_a_merge_takes_the_larger_of_own_and_inherited_lasts_per_sub_range()
    {
        // The merged segment [0, 1) inherited 7 on [0, 0.5) and 900 on [0.5, 1), then its own writes reached 20.
        var merged = Of(0, 1, Own(WriterA, 20, (0, 0.5, 7), (0.5, 1, 900)));
        var low = WriterInheritance.Compute(new(0, 0.25), [merged]);
        var middle = WriterInheritance.Compute(new(0.25, 0.75), [merged]);
        Assert.Equal([(0.0, 0.25, 20L)], Ranges(low, WriterA));
        Assert.Equal([(0.25, 0.5, 20L), (0.5, 0.75, 900L)], Ranges(middle, WriterA));

        // Merged again with a neighbour the writer never used: only the keys it owned carry its lasts.
        var neighbour = Of(1, 1, Own(WriterB, 1));
        Assert.Equal([(0.25, 0.5, 20L), (0.5, 0.75, 900L)], Ranges(WriterInheritance.Compute(new(0.25, 0.75), [merged, neighbour]), WriterA));
    }

    [Fact]
    public void Adjacent_pieces_with_equal_lasts_coalesce()
    {
        var left = Of(0, 0.5, Own(WriterA, 5));
        var right = Of(0.5, 1, Own(WriterA, 5));
        Assert.Equal([(0.0, 1.0, 5L)], Ranges(WriterInheritance.Compute(new(0, 1), [left, right]), WriterA));
    }

    [Fact]
    public void A_writer_keeps_at_most_64_ranges_and_merged_ones_keep_the_larger_last()
    {
        var inherited = Enumerable.Range(0, 100).Select(i => (i / 100.0, (i + 1) / 100.0, (long)(i * 10))).ToArray();
        var parent = Of(0, 1, Own(WriterA, -1, inherited));
        var ranges = Ranges(WriterInheritance.Compute(new(0, 1), [parent]), WriterA);
        Assert.Equal(WriterInheritance.MaxRangesPerWriter, ranges.Length);
        Assert.Equal(0.0, ranges[0].Item1);
        Assert.Equal(1.0, ranges[^1].Item2);
        for (var i = 1; i < ranges.Length; i++)
        {
            Assert.Equal(ranges[i - 1].Item2, ranges[i].Item1);
        }

        // Every key is covered by a last at least as high as the one it had: nothing already written is re-accepted.
        foreach (var (start, end, last) in inherited)
        {
            var covering = ranges.Single(r => r.Item1 <= start && r.Item2 >= end);
            Assert.True(covering.Item3 >= last, $"[{start}, {end}) had {last}, got {covering.Item3}");
        }
    }
}
