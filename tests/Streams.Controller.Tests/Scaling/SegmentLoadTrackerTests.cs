using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;

namespace Streams.Controller.Tests.Scaling;

public sealed class SegmentLoadTrackerTests
{
    private readonly Dictionary<(string, string), StreamRecord> _streams = [];
    private readonly ManualClock _clock = new(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));
    private bool _leading = true;

    private SegmentLoadTracker Tracker() => new((scope, stream) => _streams.TryGetValue((scope, stream), out var r) ? r : null, () => _leading, _clock);

    [Fact]
    public void A_controller_that_does_not_lead_refuses_reports_and_keeps_nothing()
    {
        _streams[("shop", "orders")] = ScalePlannerTests.Record(2);
        var tracker = Tracker();
        _leading = false;
        Assert.False(tracker.Accept(Report("shop/orders/0.#epoch.0")));
        Assert.Equal(0, tracker.Count);
        _leading = true;
        Assert.True(tracker.Accept(Report("shop/orders/0.#epoch.0")));
        Assert.Equal(1, tracker.Count);
    }

    [Fact]
    public void Only_segments_of_the_current_epoch_of_known_open_streams_are_kept()
    {
        _streams[("shop", "orders")] = ScalePlannerTests.Record(2);
        _streams[("shop", "old")] = ScalePlannerTests.Record(1) with { Stream = "old", State = StreamRecordState.Sealed };
        var tracker = Tracker();
        Assert.True(tracker.Accept(Report(
            "shop/orders/0.#epoch.0",
            "shop/orders/1.#epoch.0",
            "shop/orders/00.#epoch.0", // the same segment, written with a leading zero: kept once
            "shop/orders/2.#epoch.0", // not a segment of the stream
            "shop/orders/0.#epoch.1", // an epoch that never came
            "shop/old/0.#epoch.0", // a sealed stream
            "shop/missing/0.#epoch.0")));  // a stream this controller does not know
        Assert.Equal(2, tracker.Count);
        Assert.NotNull(tracker.Latest("shop/orders/1.#epoch.0"));
        Assert.Null(tracker.Latest("shop/orders/2.#epoch.0"));
    }

    [Theory]
    [InlineData("segment", "LoadReport.segments[1].segment 'not a segment name' is not a segment name")]
    [InlineData("age", "LoadReport.segments[1].age_ms is negative")]
    [InlineData("windows", "LoadReport.segments[1].event_rates has 3 values for shop/orders/1.#epoch.0; it needs 4")]
    [InlineData("buckets", "LoadReport.segments[1].key_buckets has 31 values for shop/orders/1.#epoch.0; it needs 0 or 32")]
    [InlineData("nan", "LoadReport.segments[1].byte_rates of shop/orders/1.#epoch.0 holds a negative or non-finite value")]
    public void A_malformed_report_is_refused_whole_naming_the_field(string fault, string message)
    {
        _streams[("shop", "orders")] = ScalePlannerTests.Record(2);
        var report = Report("shop/orders/0.#epoch.0", "shop/orders/1.#epoch.0");
        var bad = report.Segments[1];
        switch (fault)
        {
            case "segment": bad.Segment = "not a segment name"; break;
            case "age": bad.AgeMs = -1; break;
            case "windows": bad.EventRates.RemoveAt(3); break;
            case "buckets": bad.KeyBuckets.AddRange(new double[31]); break;
            case "nan": bad.ByteRates[2] = double.NaN; break;
        }

        var tracker = Tracker();
        var error = Assert.Throws<Grpc.Core.RpcException>(() => tracker.Accept(report));
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith(message, error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, tracker.Count);
    }

    [Fact]
    public void Forget_drops_segments_that_left_their_epoch_and_streams_that_are_gone()
    {
        var orders = ScalePlannerTests.Record(2);
        _streams[("shop", "orders")] = orders;
        _streams[("shop", "other")] = ScalePlannerTests.Record(1) with { Stream = "other" };
        var tracker = Tracker();
        tracker.Accept(Report("shop/orders/0.#epoch.0", "shop/orders/1.#epoch.0", "shop/other/0.#epoch.0"));
        tracker.SetHotKeys("shop", "other", [new HotKey { SegmentId = 0, Share = 0.9 }]);
        Assert.Equal(3, tracker.Count);

        // orders split its segment 1 into 2 and 3 (epoch 1); other was deleted.
        var scaled = orders with { Epoch = 1, ActiveSegments = [orders.ActiveSegments[0], new SegmentRecord(2, 1, 0.5, 0.75), new SegmentRecord(3, 1, 0.75, 1)] };
        tracker.Forget([scaled]);
        Assert.Equal(1, tracker.Count);
        Assert.NotNull(tracker.Latest("shop/orders/0.#epoch.0"));
        Assert.Empty(tracker.HotKeys("shop", "other"));
    }

    [Fact]
    public void Fresh_loads_leave_out_stale_reports_and_move_the_age_on()
    {
        var orders = ScalePlannerTests.Record(2);
        _streams[("shop", "orders")] = orders;
        var tracker = Tracker();
        tracker.Accept(Report("shop/orders/0.#epoch.0"));
        _clock.Advance(TimeSpan.FromSeconds(30));
        tracker.Accept(Report("shop/orders/1.#epoch.0"));
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();

        var loads = tracker.FreshLoads(orders, now, freshnessMs: 30_000);
        Assert.Equal([SegmentName.ComposeId(0, 0), SegmentName.ComposeId(0, 1)], loads.Keys.Order());
        Assert.Equal(5000 + 30_000, loads[SegmentName.ComposeId(0, 0)].AgeMs);
        Assert.Equal(5000, loads[SegmentName.ComposeId(0, 1)].AgeMs);
        Assert.Equal(5000, tracker.Latest("shop/orders/0.#epoch.0")!.AgeMs); // the kept report is not changed

        loads = tracker.FreshLoads(orders, now + 1, freshnessMs: 30_000);
        Assert.Equal([SegmentName.ComposeId(0, 1)], loads.Keys);
    }

    [Fact]
    public void Reset_forgets_everything_and_hot_keys_are_kept_per_stream()
    {
        _streams[("shop", "orders")] = ScalePlannerTests.Record(2);
        var tracker = Tracker();
        tracker.Accept(Report("shop/orders/0.#epoch.0"));
        tracker.SetHotKeys("shop", "orders", [new HotKey { SegmentId = 1, Share = 0.9 }]);
        Assert.Equal(1, Assert.Single(tracker.HotKeys("shop", "orders")).SegmentId);
        tracker.SetHotKeys("shop", "orders", []);
        Assert.Empty(tracker.HotKeys("shop", "orders"));
        tracker.Reset();
        Assert.Equal(0, tracker.Count);
    }

    private static LoadReport Report(params string[] segments) => ScalePlannerTests.Report(ScalePlannerTests.Load(10, 10, 10, 10, 5000), segments);
}
