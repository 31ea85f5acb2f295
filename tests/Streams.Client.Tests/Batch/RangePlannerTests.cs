using Streams.Client.Batch;
using Streams.Common.Naming;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.Batch;

/// <summary>
/// Which segments, across epochs, hold data between two cuts, and from where to where. The stream: epoch 0 has
/// segments 0 [0, 0.5) and 1 [0.5, 1); epoch 1 splits 1 into 2 [0.5, 0.75) and 3 [0.75, 1); epoch 2 merges 0 and 2
/// into 4 [0, 0.75).
/// </summary>
public sealed class RangePlannerTests
{
    private static readonly long S0 = SegmentName.ComposeId(0, 0), S1 = SegmentName.ComposeId(0, 1), S2 = SegmentName.ComposeId(1, 2),
        S3 = SegmentName.ComposeId(1, 3), S4 = SegmentName.ComposeId(2, 4);

    private static SegmentList Stream()
    {
        var list = new SegmentList { Epoch = 2 };
        void Add(long id, double start, double end, int? sealedEpoch, params long[] predecessors)
        {
            var descriptor = new SegmentDescriptor
            {
                Segment = new Streams.Contracts.Controller.SegmentRange { SegmentId = id, Segment = $"sc/st/{id & 0xffffffff}.#epoch.{id >> 32}", KeyStart = start, KeyEnd = end },
                CreatedEpoch = (int)(id >> 32),
            };
            if (sealedEpoch is { } e)
            {
                descriptor.SealedEpoch = e;
            }

            descriptor.PredecessorIds.AddRange(predecessors);
            list.Segments.Add(descriptor);
        }

        // Listed out of id order: the plan orders by id.
        Add(S4, 0, 0.75, null, S0, S2);
        Add(S0, 0, 0.5, 2);
        Add(S1, 0.5, 1, 1);
        Add(S2, 0.5, 0.75, 2, S1);
        Add(S3, 0.75, 1, null, S1);
        return list;
    }

    private static List<(long Id, long? Start, long? End)> Plan(Dictionary<long, long>? from, Dictionary<long, long>? to) =>
        [.. RangePlanner.Plan("sc", "st", Stream(), from, to).Select(p => (p.Segment.SegmentId, p.Start, p.End))];

    [Fact]
    public void Without_cuts_every_segment_of_every_epoch_is_read_whole_in_id_order()
    {
        Assert.Equal([(S0, null, null), (S1, null, null), (S2, null, null), (S3, null, null), (S4, null, null)], Plan(null, null));
    }

    [Fact]
    public void A_start_cut_drops_the_segments_before_it_and_reads_the_later_ones_from_their_head()
    {
        // A cut in epoch 1: segment 1 is wholly before it (its successors 2 and 3 are in the cut).
        var plan = Plan(new() { [S0] = 10, [S2] = 5, [S3] = 7 }, null);

        Assert.Equal([(S0, 10, null), (S2, 5, null), (S3, 7, null), (S4, null, null)], plan);
    }

    [Fact]
    public void An_end_cut_drops_the_segments_beyond_it_and_reads_the_earlier_ones_to_their_end()
    {
        Assert.Equal([(S0, null, 20), (S1, null, 30)], Plan(null, new() { [S0] = 20, [S1] = 30 }));
        // A cut in the last epoch: everything older is read to its end.
        Assert.Equal([(S0, null, null), (S1, null, null), (S2, null, null), (S3, null, 9), (S4, null, 50)], Plan(null, new() { [S4] = 50, [S3] = 9 }));
    }

    [Fact]
    public void Between_two_cuts_across_epochs()
    {
        var plan = Plan(new() { [S0] = 10, [S1] = 5 }, new() { [S4] = 50, [S3] = 9 });

        Assert.Equal([(S0, 10, null), (S1, 5, null), (S2, null, null), (S3, null, 9), (S4, null, 50)], plan);
    }

    [Fact]
    public void A_segment_at_the_same_offset_in_both_cuts_holds_nothing_between_them()
    {
        Assert.Equal([(S1, 5, 8)], Plan(new() { [S0] = 10, [S1] = 5 }, new() { [S0] = 10, [S1] = 8 }));
    }

    [Fact]
    public void A_checkpoint_style_cut_with_a_successor_at_zero_reads_both()
    {
        // Segment 0 not finished, its successor 4 waiting at 0 beside it (a reader group's checkpoint looks so).
        var plan = Plan(new() { [S0] = 3, [S2] = 4, [S4] = 0, [S3] = 1 }, null);

        Assert.Equal([(S0, 3, null), (S2, 4, null), (S3, 1, null), (S4, 0, null)], plan);
    }

    [Theory]
    [InlineData("uncovered", "does not cover every routing key")]
    [InlineData("unknown", "which the stream does not have")]
    [InlineData("negative", "negative offset")]
    [InlineData("empty", "names no segment")]
    public void A_bad_cut_is_refused_saying_what_is_wrong(string which, string message)
    {
        var cut = which switch
        {
            "uncovered" => new Dictionary<long, long> { [S0] = 1 },
            "unknown" => new() { [S0] = 1, [S1] = 1, [SegmentName.ComposeId(7, 9)] = 0 },
            "negative" => new() { [S0] = -1, [S1] = 1 },
            _ => new(),
        };

        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Plan(cut, null)).Message);
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => Plan(null, cut)).Message);
    }

    [Fact]
    public void A_start_cut_past_the_end_cut_is_refused()
    {
        Assert.Contains("(9 > 4)", Assert.Throws<ArgumentException>(() => Plan(new() { [S0] = 9, [S1] = 0 }, new() { [S0] = 4, [S1] = 0 })).Message);
        Assert.Contains("comes after the end cut", Assert.Throws<ArgumentException>(() => Plan(new() { [S4] = 0, [S3] = 0 }, new() { [S0] = 4, [S1] = 0 })).Message);
    }
}
