using System.Diagnostics.Metrics;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Coordination.Metadata;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;
using Streams.Controller.Tests.Streams;
using Streams.Testing;

namespace Streams.Controller.Tests.Scaling;

public sealed class ScaleEvaluatorTests : IAsyncLifetime
{
    private const long Now = 100_000_000_000;

    private readonly TempDirectory _dir = new("evaluator");
    private readonly ManualClock _clock = new(DateTimeOffset.FromUnixTimeMilliseconds(Now));
    private readonly List<(string Stream, ScalePlan Plan)> _scaled = [];
    private FileMetadataStore _store = null!;
    private StreamMetadataStore _streams = null!;
    private ControllerService _controller = null!;
    private SegmentLoadTracker _loads = null!;
    private bool _leading;

    public async ValueTask InitializeAsync()
    {
        _store = FileMetadataStore.Open(_dir.Path);
        _streams = new StreamMetadataStore(_store);
        _loads = new SegmentLoadTracker((scope, stream) => _controller.Known(scope, stream), () => _leading, _clock);
        _controller = new ControllerService(_streams, new RecordingSegmentStore(), new Locator(), new ControllerOptions(), NullLogger<ControllerService>.Instance, _loads);
        await _controller.CreateScopeAsync("shop", default);
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task The_leader_hands_the_planners_plan_to_the_scale_workflow_and_a_follower_does_nothing()
    {
        await CreateAsync("orders", ScalePlannerTests.Record(2));
        await _controller.ListAllStreamsAsync(default); // the controller knows its streams once it has read them
        var evaluator = Evaluator();

        Assert.Equal(0, await evaluator.RunOnceAsync(default));
        Assert.False(_loads.Accept(Hot("shop/orders/1.#epoch.0")));
        Assert.Empty(_scaled);

        _leading = true;
        Assert.True(_loads.Accept(Hot("shop/orders/1.#epoch.0")));
        Assert.Equal(1, await evaluator.RunOnceAsync(default));
        var (stream, plan) = Assert.Single(_scaled);
        Assert.Equal("orders", stream);
        Assert.Equal([SegmentName.ComposeId(0, 1)], plan.SealSegmentIds);
        Assert.Equal([new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], plan.NewRanges);
        Assert.StartsWith("split 1.#epoch.0 in 2: 2-min rate 9000/s", plan.Reason, StringComparison.Ordinal);

        _leading = false;
        Assert.Equal(0, await evaluator.RunOnceAsync(default));
        Assert.Single(_scaled);
    }

    [Fact]
    public async Task One_streams_failure_does_not_stop_the_others_and_it_is_tried_again_next_round()
    {
        _leading = true;
        await CreateAsync("a", ScalePlannerTests.Record(1) with { Stream = "a" });
        await CreateAsync("b", ScalePlannerTests.Record(1) with { Stream = "b" });
        await CreateAsync("fixed", ScalePlannerTests.Record(1) with { Stream = "fixed", Scaling = null });
        await _controller.ListAllStreamsAsync(default);
        _loads.Accept(Hot("shop/a/0.#epoch.0", "shop/b/0.#epoch.0", "shop/fixed/0.#epoch.0"));
        var failA = true;
        var evaluator = Evaluator((record, plan) =>
        {
            if (record.Stream == "a" && failA)
            {
                throw new RpcException(new Status(StatusCode.FailedPrecondition, "another scale is in progress"));
            }

            _scaled.Add((record.Stream, plan));
        });

        Assert.Equal(1, await evaluator.RunOnceAsync(default));
        Assert.Equal(["b"], _scaled.Select(s => s.Stream));
        failA = false;
        Assert.Equal(2, await evaluator.RunOnceAsync(default));
        Assert.Equal(["b", "a", "b"], _scaled.Select(s => s.Stream)); // the workflow would have moved b on; here it stays hot
    }

    [Fact]
    public async Task With_the_real_workflow_a_round_splits_a_hot_segment()
    {
        _leading = true;
        var loads = new SegmentLoadTracker((scope, stream) => _controller.Known(scope, stream), () => true);
        var controller = _controller;
        await CreateAsync("orders", ScalePlannerTests.Record(1));
        await controller.ListAllStreamsAsync(default);
        Assert.True(loads.Accept(Hot("shop/orders/0.#epoch.0")));
        var evaluator = new ScaleEvaluator(controller, loads, new ScalingSettings(), null, NullLogger<ScaleEvaluator>.Instance);
        Assert.Equal(1, await evaluator.RunOnceAsync(default));
        var described = await controller.DescribeStreamAsync("shop", "orders", default);
        Assert.Equal(1, described.Epoch);
        Assert.True(described.ActiveSegments.Count > 1, $"The hot segment was not split: {described.ActiveSegments.Count} segment(s)");
    }

    [Fact]
    public async Task Hot_keys_show_in_describe_and_in_the_gauges_and_scales_are_counted()
    {
        _leading = true;
        await CreateAsync("metered", ScalePlannerTests.Record(2) with { Stream = "metered" });
        await _controller.ListAllStreamsAsync(default);
        var buckets = new double[32];
        buckets[3] = 1;
        var hot = Hot("shop/metered/0.#epoch.0", "shop/metered/1.#epoch.0");
        hot.Segments[0].KeyBuckets.AddRange(buckets);
        _loads.Accept(hot);

        using var metrics = new ControllerMetrics(_controller, _loads);
        var seen = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ControllerMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.Start();

        Assert.Equal(1, await Evaluator(metrics: metrics).RunOnceAsync(default));
        var plan = Assert.Single(_scaled).Plan;
        Assert.Equal([SegmentName.ComposeId(0, 1)], plan.SealSegmentIds); // segment 0 is a hot key: not split
        var hotKey = Assert.Single((await _controller.DescribeStreamAsync("shop", "metered", default)).HotKeys);
        Assert.Equal((0L, 3 * 0.5 / 32, 1.0), (hotKey.SegmentId, hotKey.KeyStart, hotKey.Share));

        listener.RecordObservableInstruments();
        Assert.Equal(2, seen["streams.stream.segments"]);
        Assert.Equal(2, seen["streams.stream.active_segments"]);
        Assert.Equal(1, seen["streams.stream.hot_keys"]);
        Assert.Equal(1, seen["streams.stream.scale_events/split"]);
        Assert.False(seen.ContainsKey("streams.stream.scale_events/merge"));

        void Record(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? stream = null, kind = null;
            foreach (var tag in tags)
            {
                (stream, kind) = tag.Key switch { "stream" => (tag.Value as string, kind), "kind" => (stream, tag.Value as string), _ => (stream, kind) };
            }

            if (stream == "metered")
            {
                var key = kind is null ? instrument.Name : $"{instrument.Name}/{kind}";
                seen[key] = seen.GetValueOrDefault(key) + value;
            }
        }
    }

    private ScaleEvaluator Evaluator(Action<StreamRecord, ScalePlan>? scale = null, ControllerMetrics? metrics = null) =>
        new(_controller, _loads, new ScalingSettings(), metrics, NullLogger.Instance, _clock, (record, plan, _) =>
        {
            (scale ?? ((r, p) => _scaled.Add((r.Stream, p))))(record, plan);
            return Task.CompletedTask;
        });

    private async Task CreateAsync(string stream, StreamRecord record) =>
        Assert.True(await _streams.CreateStreamAsync(record with { Stream = stream }, default));

    /// <summary>A report of segments at 9 × the tests' target over 2 min, measured for long.</summary>
    private static LoadReport Hot(params string[] segments) => ScalePlannerTests.Report(ScalePlannerTests.Load(9000, 0, 0, 0, 10_000_000), segments);
}
