using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;

namespace Streams.Controller.Tests.Scaling;

public sealed class ScalePlannerTests
{
    /// <summary>Target per segment in the tests: 1000 events/s (or KiB/s).</summary>
    private const int T = 1000;

    /// <summary>Long after every stream in these tests was created.</summary>
    private const long Now = 100_000_000_000;

    /// <summary>Older than every window.</summary>
    private const long Old = 10_000_000;

    private static readonly ScalingSettings Settings = new();

    [Theory]
    [InlineData(5001, 0, 0, 120_001, true)] // 2-min > 5 x T, measured longer than 2 min
    [InlineData(5001, 0, 0, 120_000, false)] // not yet measured for a whole 2 min
    [InlineData(5000, 0, 0, Old, false)] // at the threshold, not above
    [InlineData(0, 2001, 0, 300_001, true)] // 5-min > 2 x T
    [InlineData(0, 2001, 0, 300_000, false)]
    [InlineData(0, 0, 1001, 600_001, true)] // 10-min > T
    [InlineData(0, 0, 1001, 600_000, false)]
    [InlineData(4999, 1999, 999, Old, false)] // every window just under its threshold
    [InlineData(9000, 9000, 9000, 119_000, false)] // hot, but too young for any window
    public void A_segment_splits_when_a_window_exceeds_its_threshold_once_the_segment_is_older_than_it(double r2, double r5, double r10, long age, bool splits)
    {
        var record = Record(1);
        var decision = ScalePlanner.Decide(record, Loads(record, Load(r2, r5, r10, 0, age)), Now, Settings);
        Assert.Equal(splits, decision.Plan is { Splits: 1 });
        if (splits)
        {
            Assert.Equal([Id(0, 0)], decision.Plan!.SealSegmentIds);
            Assert.Contains("split 0.#epoch.0 in 2", decision.Plan.Reason, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(1001, 4, 2)] // at least 2 pieces
    [InlineData(3500, 4, 3)] // floor(3.5)
    [InlineData(10_000, 4, 4)] // at most the scale factor
    [InlineData(10_000, 0, 2)] // scale factor 0 means 2
    public void A_split_makes_max_rate_over_target_pieces_within_2_and_the_scale_factor(double r10, int scaleFactor, int pieces)
    {
        var record = Record(1, scaleFactor: scaleFactor);
        var plan = ScalePlanner.Decide(record, Loads(record, Load(0, 0, r10, 0, Old)), Now, Settings).Plan;
        Assert.NotNull(plan);
        Assert.Equal(pieces, plan.NewRanges.Count);
        AssertTiles(plan.NewRanges, 0, 1);
    }

    [Theory]
    [InlineData(3, 4, 2)] // one segment of headroom: two pieces
    [InlineData(3, 3, 0)] // at the maximum: no split
    [InlineData(2, 64, 4)]
    public void Splits_never_take_the_stream_above_its_maximum(int segments, int max, int pieces)
    {
        var record = Record(segments, scaleFactor: 4, max: max);
        var plan = ScalePlanner.Decide(record, Loads(record, Load(0, 0, 9000, 0, Old)), Now, Settings).Plan;
        Assert.Equal(pieces, plan?.NewRanges.Count ?? 0);
    }

    [Fact]
    public void Two_hot_segments_share_the_headroom_hottest_first()
    {
        var record = Record(2, scaleFactor: 4, max: 4);
        var plan = ScalePlanner.Decide(record, Loads(record, Load(0, 0, 2500, 0, Old), Load(0, 0, 9000, 0, Old)), Now, Settings).Plan!;
        Assert.Equal([Id(0, 1)], plan.SealSegmentIds); // the hotter takes both free segments
        Assert.Equal(3, plan.NewRanges.Count);
        AssertTiles(plan.NewRanges, 0.5, 1);
    }

    [Fact]
    public void A_split_cuts_at_the_loads_weighted_median_on_a_bucket_edge()
    {
        var record = Record(1);
        var buckets = new double[32];
        for (var i = 0; i < 8; i++)
        {
            buckets[i] = 1.0 / 8; // all load in the first quarter of the key space
        }

        var plan = ScalePlanner.Decide(record, Loads(record, Load(6000, 0, 0, 0, Old, buckets)), Now, Settings).Plan!;
        Assert.Equal([new KeyRangeRecord(0, 4.0 / 32), new KeyRangeRecord(4.0 / 32, 1)], plan.NewRanges);
    }

    [Fact]
    public void Without_a_histogram_a_split_makes_equal_widths()
    {
        var record = Record(2, scaleFactor: 3);
        var plan = ScalePlanner.Decide(record, Loads(record, null, Load(0, 0, 3000, 0, Old)), Now, Settings).Plan!;
        Assert.Equal(3, plan.NewRanges.Count);
        Assert.All(plan.NewRanges, r => Assert.Equal(1.0 / 6, r.End - r.Start, 12));
        AssertTiles(plan.NewRanges, 0.5, 1);
    }

    [Fact]
    public void A_segment_whose_load_sits_in_one_bucket_is_not_split_but_reported_hot()
    {
        var record = Record(2);
        var buckets = new double[32];
        buckets[5] = 0.85;
        buckets[6] = 0.15;
        var decision = ScalePlanner.Decide(record, Loads(record, Load(9000, 9000, 9000, 0, Old, buckets)), Now, Settings);
        Assert.Null(decision.Plan);
        var hot = Assert.Single(decision.HotKeys);
        Assert.Equal((Id(0, 0), 5 * 0.5 / 32, 6 * 0.5 / 32, 0.85), (hot.SegmentId, hot.KeyStart, hot.KeyEnd, Math.Round(hot.Share, 6)));

        buckets[5] = 0.8; // at 80%, not above: split, and the cut falls on the heavy bucket's edge
        buckets[6] = 0.2;
        decision = ScalePlanner.Decide(record, Loads(record, Load(9000, 9000, 9000, 0, Old, buckets)), Now, Settings);
        Assert.Empty(decision.HotKeys);
        Assert.Equal(2, decision.Plan!.NewRanges.Count);
        Assert.Equal(6 * 0.5 / 32, decision.Plan.NewRanges[0].End);
    }

    [Fact]
    public void No_cut_makes_a_range_narrower_than_2_to_the_minus_32()
    {
        const double Width = 1.5 / 4294967296.0;
        var record = Record(1) with { ActiveSegments = [new SegmentRecord(0, 0, 0, Width), new SegmentRecord(1, 0, Width, 1)] };
        var decision = ScalePlanner.Decide(record, Loads(record, Load(9000, 0, 0, 0, Old)), Now, Settings);
        Assert.Null(decision.Plan);
        Assert.Equal(Id(0, 0), Assert.Single(decision.HotKeys).SegmentId);

        var wider = record with { ActiveSegments = [new SegmentRecord(0, 0, 0, 2 * ScalePlanner.MinWidth), new SegmentRecord(1, 0, 2 * ScalePlanner.MinWidth, 1)] };
        var plan = ScalePlanner.Decide(wider, Loads(wider, Load(9000, 0, 0, 0, Old)), Now, Settings).Plan!;
        Assert.All(plan.NewRanges, r => Assert.True(r.End - r.Start >= ScalePlanner.MinWidth));
    }

    [Fact]
    public void Adjacent_segments_merge_when_their_combined_20_min_rate_is_at_most_half_the_target()
    {
        var record = Record(4);
        var plan = ScalePlanner.Decide(record, Loads(record, Load(250, 250, 250, 250, Old), Load(250, 250, 250, 250, Old), Load(260, 260, 260, 260, Old), Load(260, 260, 260, 260, Old)), Now, Settings).Plan!;
        Assert.Equal((0, 1), (plan.Splits, plan.Merges));
        Assert.Equal([Id(0, 0), Id(0, 1)], plan.SealSegmentIds); // 500 <= 500; 520 > 500
        Assert.Equal([new KeyRangeRecord(0, 0.5)], plan.NewRanges);
        Assert.Contains("merge 0.#epoch.0 and 1.#epoch.0: 20-min rate 500/s <= 500/s", plan.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Merges_go_coldest_pair_first_and_take_each_segment_once()
    {
        var record = Record(3);
        var plan = ScalePlanner.Decide(record, Loads(record, Load(0, 0, 0, 100, Old), Load(0, 0, 0, 50, Old), Load(0, 0, 0, 10, Old)), Now, Settings).Plan!;
        Assert.Equal([Id(0, 1), Id(0, 2)], plan.SealSegmentIds);

        var four = Record(4);
        plan = ScalePlanner.Decide(four, Loads(four, Load(0, 0, 0, 10, Old), Load(0, 0, 0, 10, Old), Load(0, 0, 0, 10, Old), Load(0, 0, 0, 10, Old)), Now, Settings).Plan!;
        Assert.Equal(2, plan.Merges);
        Assert.Equal([new KeyRangeRecord(0, 0.5), new KeyRangeRecord(0.5, 1)], plan.NewRanges);
    }

    [Theory]
    [InlineData(2, 2, 0)]
    [InlineData(4, 3, 1)]
    [InlineData(4, 1, 2)]
    [InlineData(1, 1, 0)]
    public void Merges_never_take_the_stream_below_its_minimum(int segments, int min, int merges)
    {
        var record = Record(segments, min: min);
        var plan = ScalePlanner.Decide(record, Loads(record, [.. Enumerable.Repeat(Load(0, 0, 0, 0, Old), segments)]), Now, Settings).Plan;
        Assert.Equal(merges, plan?.Merges ?? 0);
    }

    [Fact]
    public void A_merge_needs_both_reports_both_older_than_the_longest_window_and_no_burst()
    {
        var record = Record(2);
        Assert.Null(ScalePlanner.Decide(record, Loads(record, Load(0, 0, 0, 0, Old), null), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record, Loads(record, Load(0, 0, 0, 0, Old), Load(0, 0, 0, 0, 1_200_000)), Now, Settings).Plan);
        Assert.NotNull(ScalePlanner.Decide(record, Loads(record, Load(0, 0, 0, 0, Old), Load(0, 0, 0, 0, 1_200_001)), Now, Settings).Plan);
        // A burst: cold over 20 min, but the pair's 10-min rate is above the target.
        Assert.Null(ScalePlanner.Decide(record, Loads(record, Load(0, 0, 600, 200, Old), Load(0, 0, 600, 200, Old)), Now, Settings).Plan);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void A_steady_load_of_seven_tenths_of_the_target_never_scales(int segments)
    {
        var record = Record(segments);
        var loads = Loads(record, [.. Enumerable.Repeat(Load(700, 700, 700, 700, Old), segments)]);
        for (var minute = 0; minute < 24 * 60; minute += 7)
        {
            Assert.Null(ScalePlanner.Decide(record, loads, Now + (minute * 60_000L), Settings).Plan);
        }
    }

    [Fact]
    public void A_merged_segment_never_meets_a_split_condition()
    {
        var random = new Random(7);
        var merges = 0;
        for (var i = 0; i < 10_000; i++)
        {
            double Rate() => random.NextDouble() * 1.2 * T;
            var (a, b) = (Load(Rate(), Rate(), Rate(), Rate() / 2.4, Old), Load(Rate(), Rate(), Rate(), Rate() / 2.4, Old));
            var pair = Record(2);
            if (ScalePlanner.Decide(pair, Loads(pair, a, b), Now, Settings).Plan is not { Merges: 1 })
            {
                continue;
            }

            merges++;
            var merged = Record(1); // the successor starts from the sum of its predecessors' rates
            var sum = Load(a.EventRates[0] + b.EventRates[0], a.EventRates[1] + b.EventRates[1], a.EventRates[2] + b.EventRates[2], a.EventRates[3] + b.EventRates[3], Old);
            Assert.Null(ScalePlanner.Decide(merged, Loads(merged, sum), Now, Settings).Plan);
        }

        Assert.True(merges > 50, $"only {merges} of the random pairs merged; the test sees too few");
    }

    [Fact]
    public void Successors_of_a_scale_do_not_split_within_the_split_cooldown()
    {
        var record = Record(1) with
        {
            Epoch = 1,
            ActiveSegments = [new SegmentRecord(1, 1, 0, 0.5), new SegmentRecord(2, 1, 0.5, 1)],
            History = [new ScaleHistoryRecord(1, Now - 599_999, [Id(0, 0)], [Id(1, 1), Id(1, 2)], "split")],
        };
        var hot = Loads(record, Load(9000, 0, 0, 0, Old), null);
        Assert.Null(ScalePlanner.Decide(record, hot, Now, Settings).Plan);
        Assert.NotNull(ScalePlanner.Decide(record, hot, Now + 1, Settings).Plan);

        // A stream's first segments did not come from a scale: they split as soon as a window says so.
        var fresh = Record(1, createdAt: Now - 200_000);
        Assert.NotNull(ScalePlanner.Decide(fresh, Loads(fresh, Load(9000, 0, 0, 0, 130_000)), Now, Settings).Plan);
    }

    [Fact]
    public void Segments_do_not_merge_within_the_merge_cooldown_of_their_creation()
    {
        var created = Record(2, createdAt: Now - 1_199_999);
        var cold = Loads(created, Load(0, 0, 0, 0, Old), Load(0, 0, 0, 0, Old)); // seeded successors carry age
        Assert.Null(ScalePlanner.Decide(created, cold, Now, Settings).Plan);
        Assert.NotNull(ScalePlanner.Decide(created, cold, Now + 1, Settings).Plan);

        var merged = Record(2) with
        {
            Epoch = 3,
            ActiveSegments = [new SegmentRecord(4, 3, 0, 0.5), new SegmentRecord(5, 2, 0.5, 1)],
            History = [new ScaleHistoryRecord(2, Now - 5_000_000, [], [], "split"), new ScaleHistoryRecord(3, Now - 60_000, [], [], "merge")],
        };
        Assert.Null(ScalePlanner.Decide(merged, Loads(merged, Load(0, 0, 0, 0, Old), Load(0, 0, 0, 0, Old)), Now, Settings with { MergeCooldownMs = 60_001 }).Plan);
        Assert.NotNull(ScalePlanner.Decide(merged, Loads(merged, Load(0, 0, 0, 0, Old), Load(0, 0, 0, 0, Old)), Now, Settings with { MergeCooldownMs = 60_000 }).Plan);
    }

    [Fact]
    public void One_plan_coalesces_two_splits_and_a_merge_in_key_order()
    {
        var record = Record(5);
        var plan = ScalePlanner.Decide(record, Loads(record,
            Load(6000, 0, 0, 0, Old), // split (2-min)
            Load(0, 0, 0, 100, Old), // merge with the next
            Load(0, 0, 0, 100, Old),
            Load(0, 0, 1500, 1500, Old), // split (10-min)
            Load(700, 700, 700, 700, Old)), Now, Settings).Plan!;
        Assert.Equal((2, 1), (plan.Splits, plan.Merges));
        Assert.Equal([Id(0, 0), Id(0, 1), Id(0, 2), Id(0, 3)], plan.SealSegmentIds);
        Assert.Equal(
            [(0, 0.1), (0.1, 0.2), (0.2, 0.6), (0.6, 0.7), (0.7, 0.8)],
            plan.NewRanges.Select(r => (Math.Round(r.Start, 12), Math.Round(r.End, 12))).ToList());
        AssertTiles(plan.NewRanges, 0, 0.8);
        Assert.Equal(3, plan.Reason.Split("; ").Length);
        Assert.StartsWith("split 0.#epoch.0 in 2: 2-min rate 6000/s > 5 x 1000/s; merge 1.#epoch.0 and 2.#epoch.0", plan.Reason, StringComparison.Ordinal);
        Assert.EndsWith("split 3.#epoch.0 in 2: 10-min rate 1500/s > 1 x 1000/s", plan.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_segment_that_splits_is_not_merged_in_the_same_plan()
    {
        var record = Record(2);
        // 20-min cold, but the 2-min window is far above: the segment splits, and its neighbour stays.
        var plan = ScalePlanner.Decide(record, Loads(record, Load(6000, 0, 0, 0, Old), Load(0, 0, 0, 0, Old)), Now, Settings).Plan!;
        Assert.Equal((1, 0), (plan.Splits, plan.Merges));
    }

    [Fact]
    public void Fixed_streams_streams_being_scaled_and_sealed_streams_never_autoscale()
    {
        var hot = Load(9000, 9000, 9000, 9000, Old);
        var record = Record(1);
        Assert.NotNull(ScalePlanner.Decide(record, Loads(record, hot), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record with { Scaling = new ScalingPolicyRecord(ScalingKind.Fixed, 1) }, Loads(record, hot), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record with { Scaling = null }, Loads(record, hot), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record with { State = StreamRecordState.Sealed }, Loads(record, hot), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record with { Transition = new EpochTransitionRecord(0, [Id(0, 0)], [new(0, 1)], "", Now, Now, "manual") }, Loads(record, hot), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record, new Dictionary<long, SegmentLoad>(), Now, Settings).Plan);
    }

    [Fact]
    public void A_data_rate_policy_reads_bytes_per_second_as_KiB_per_second()
    {
        var record = Record(1, kind: ScalingKind.KBytesPerSecond);
        var load = Load(0, 0, 0, 0, Old);
        load.ByteRates[0] = 5001 * 1024.0;
        Assert.NotNull(ScalePlanner.Decide(record, Loads(record, load), Now, Settings).Plan);
        load.ByteRates[0] = 5000 * 1024.0;
        load.EventRates[0] = 1e9; // events do not count for a data-rate policy
        Assert.Null(ScalePlanner.Decide(record, Loads(record, load), Now, Settings).Plan);
    }

    [Fact]
    public void A_report_missing_windows_or_holding_nonsense_is_no_evidence()
    {
        var record = Record(1);
        var short1 = new SegmentLoad { Segment = "s", AgeMs = Old };
        short1.EventRates.AddRange([9000, 9000, 9000]);
        Assert.Null(ScalePlanner.Decide(record, Loads(record, short1), Now, Settings).Plan);
        Assert.Null(ScalePlanner.Decide(record, Loads(record, Load(double.NaN, 9000, 9000, 0, Old)), Now, Settings).Plan);
    }

    // ---- helpers ----

    internal static StreamRecord Record(int segments, ScalingKind kind = ScalingKind.EventsPerSecond, int scaleFactor = 2, int min = 1, int max = 64, long createdAt = 0) =>
        new("shop", "orders", segments, StreamRecordState.Active, 0, ControllerService.EvenSegments(segments), createdAt,
            Scaling: new ScalingPolicyRecord(kind, T, scaleFactor, min, max), NextSegmentNumber: segments);

    internal static SegmentLoad Load(double r2, double r5, double r10, double r20, long ageMs, double[]? buckets = null)
    {
        var load = new SegmentLoad { AgeMs = ageMs };
        load.EventRates.AddRange([r2, r5, r10, r20]);
        load.ByteRates.AddRange([r2 * 1024, r5 * 1024, r10 * 1024, r20 * 1024]);
        load.KeyBuckets.AddRange(buckets ?? []);
        return load;
    }

    /// <summary>A segment store's report: a copy of <paramref name="load"/> for each segment.</summary>
    internal static LoadReport Report(SegmentLoad load, params string[] segments)
    {
        var report = new LoadReport { SegmentStore = "store-1" };
        foreach (var segment in segments)
        {
            var copy = load.Clone();
            copy.Segment = segment;
            report.Segments.Add(copy);
        }

        return report;
    }

    /// <summary>The loads by segment id, in key order; null: no report for that segment.</summary>
    private static Dictionary<long, SegmentLoad> Loads(StreamRecord record, params SegmentLoad?[] loads)
    {
        var segments = record.ActiveSegments.OrderBy(s => s.KeyStart).ToList();
        var byId = new Dictionary<long, SegmentLoad>();
        for (var i = 0; i < loads.Length; i++)
        {
            if (loads[i] is { } load)
            {
                byId[Id(segments[i].Epoch, segments[i].Number)] = load;
            }
        }

        return byId;
    }

    private static long Id(int epoch, int number) => SegmentName.ComposeId(epoch, number);

    private static void AssertTiles(IReadOnlyList<KeyRangeRecord> ranges, double start, double end)
    {
        Assert.Equal(start, ranges[0].Start);
        Assert.Equal(end, ranges[^1].End);
        for (var i = 0; i < ranges.Count; i++)
        {
            Assert.True(ranges[i].Start < ranges[i].End, $"range {i} is empty");
            if (i > 0)
            {
                Assert.Equal(ranges[i - 1].End, ranges[i].Start);
            }
        }
    }
}
