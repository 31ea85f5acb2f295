using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Controller.Tests.Streams;

public sealed class ControllerServiceScalingTests : IAsyncLifetime
{
    private static readonly long Seg0 = SegmentName.ComposeId(0, 0);
    private static readonly long Seg1 = SegmentName.ComposeId(0, 1);

    /// <summary>Segment 1 ([0.5, 1)) in three pieces.</summary>
    private static readonly KeyRangeRecord[] SplitOfSeg1 = [new(0.5, 0.625), new(0.625, 0.75), new(0.75, 1)];

    private readonly TempDirectory _dir = new("controller-scaling");
    private readonly RecordingSegmentStore _segments = new();
    private readonly Loads _loads = new();
    private FileMetadataStore _file = null!;
    private CrashingMetadataStore _metadata = null!;
    private ControllerService _controller = null!;

    public async ValueTask InitializeAsync()
    {
        _file = FileMetadataStore.Open(_dir.Path);
        _metadata = new CrashingMetadataStore(_file);
        _controller = Create();
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", Fixed(2), default);
    }

    public async ValueTask DisposeAsync()
    {
        await _file.DisposeAsync();
        _dir.Dispose();
    }

    private ControllerService Create(TimeSpan? stepTimeout = null) =>
        new(new StreamMetadataStore(_metadata), _segments, new Locator(), new ControllerOptions { MaxSegmentsPerStream = 64, ScaleStepTimeout = stepTimeout ?? TimeSpan.FromSeconds(60) },
            NullLogger<ControllerService>.Instance, _loads);

    private static StreamConfiguration Fixed(int count) => new() { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = count } } };

    private Task<StreamInfo> Split(ControllerService controller) =>
        controller.ScaleStreamAsync("shop", "orders", [Seg1], SplitOfSeg1, ControllerService.ManualReason, default);

    private async Task<StreamRecord> RecordAsync() => (await new StreamMetadataStore(_file).GetStreamAsync("shop", "orders", default))!.Value.Record;

    [Fact]
    public async Task A_split_then_a_merge_make_two_epochs_whose_segments_link()
    {
        var split = await Split(_controller);
        Assert.Equal(1, split.Epoch);
        Assert.Equal(["shop/orders/0.#epoch.0", "shop/orders/2.#epoch.1", "shop/orders/3.#epoch.1", "shop/orders/4.#epoch.1"], split.ActiveSegments.Select(s => s.Segment));
        Assert.Equal([0, 0.5, 0.625, 0.75], split.ActiveSegments.Select(s => s.KeyStart));
        Assert.Equal(SegmentName.ComposeId(1, 2), split.ActiveSegments[1].SegmentId);
        Assert.Equal(["shop/orders/1.#epoch.0"], _segments.Sealed);
        Assert.Equal(4, split.Config.Scaling.Fixed.SegmentCount);
        Assert.Null(split.Transition);

        var merged = await _controller.ScaleStreamAsync("shop", "orders", [SegmentName.ComposeId(1, 4), SegmentName.ComposeId(1, 3)], [new(0.625, 1)], ControllerService.ManualReason, default);
        Assert.Equal(2, merged.Epoch);
        Assert.Equal(["shop/orders/0.#epoch.0", "shop/orders/2.#epoch.1", "shop/orders/5.#epoch.2"], merged.ActiveSegments.Select(s => s.Segment));
        Assert.Equal([2, 1], merged.History.Select(h => h.Epoch).Reverse());
        Assert.Equal([SegmentName.ComposeId(1, 3), SegmentName.ComposeId(1, 4)], merged.History[1].SealedSegmentIds);
        Assert.Equal([SegmentName.ComposeId(2, 5)], merged.History[1].CreatedSegmentIds);
        Assert.Equal("manual", merged.History[1].Reason);

        var record = await RecordAsync();
        Assert.Equal(6, record.NextSegmentNumber);
        var list = await _controller.ListSegmentsAsync("shop", "orders", default);
        Assert.Equal(6, list.Segments.Count);
        var five = list.Segments.Single(s => s.Segment.Segment == "shop/orders/5.#epoch.2");
        Assert.Equal([SegmentName.ComposeId(1, 3), SegmentName.ComposeId(1, 4)], five.PredecessorIds);
        Assert.False(five.HasSealedEpoch);
        Assert.Equal(1, list.Segments.Single(s => s.Segment.Segment == "shop/orders/1.#epoch.0").SealedEpoch);
        Assert.Equal(2, list.Segments.Single(s => s.Segment.Segment == "shop/orders/3.#epoch.1").SealedEpoch);
    }

    [Fact]
    public async Task Successors_answer_once_the_epoch_advanced_with_all_their_predecessors()
    {
        Assert.Empty((await _controller.GetSuccessorsAsync("shop/orders/1.#epoch.0", default)).Successors);

        // Stopped after sealing: the old segment is sealed but the new epoch is not out yet.
        _metadata.CrashAtSet(4, afterWrite: true);
        await Assert.ThrowsAsync<IOException>(() => Split(_controller));
        var during = await _controller.GetSuccessorsAsync("shop/orders/1.#epoch.0", default);
        Assert.Empty(during.Successors);
        Assert.Equal(StreamState.Active, during.State);

        await Split(_controller);
        var after = await _controller.GetSuccessorsAsync("shop/orders/1.#epoch.0", default);
        Assert.Equal(["shop/orders/2.#epoch.1", "shop/orders/3.#epoch.1", "shop/orders/4.#epoch.1"], after.Successors.Select(s => s.Segment.Segment));
        Assert.All(after.Successors, s => Assert.Equal([Seg1], s.PredecessorIds));

        await _controller.ScaleStreamAsync("shop", "orders", [SegmentName.ComposeId(1, 3), SegmentName.ComposeId(1, 4)], [new(0.625, 1)], ControllerService.ManualReason, default);
        var ofMerged = await _controller.GetSuccessorsAsync("shop/orders/4.#epoch.1", default);
        var successor = Assert.Single(ofMerged.Successors);
        Assert.Equal("shop/orders/5.#epoch.2", successor.Segment.Segment);
        Assert.Equal([SegmentName.ComposeId(1, 3), SegmentName.ComposeId(1, 4)], successor.PredecessorIds);

        // A stream sealed by SealStream: its last segments have no successors, and the state says why.
        await _controller.SealStreamAsync("shop", "orders", default);
        var end = await _controller.GetSuccessorsAsync("shop/orders/5.#epoch.2", default);
        Assert.Empty(end.Successors);
        Assert.Equal(StreamState.Sealed, end.State);
        await AssertStatus(StatusCode.NotFound, "has no segment 9 of epoch 1", () => _controller.GetSuccessorsAsync("shop/orders/9.#epoch.1", default));
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(3, false)]
    [InlineData(3, true)]
    [InlineData(4, false)]
    [InlineData(4, true)]
    [InlineData(5, false)]
    [InlineData(5, true)]
    [InlineData(6, false)]
    [InlineData(6, true)]
    public async Task A_scale_that_crashed_at_any_step_is_finished_by_recovery_with_one_epoch_advance(int crashAtUpdate, bool afterWrite)
    {
        // Updates: 1 records the transition, 2-5 record created, linked, sealed, inherited, 6 advances the epoch.
        _metadata.CrashAtSet(crashAtUpdate, afterWrite);
        await Assert.ThrowsAsync<IOException>(() => Split(_controller));

        var restarted = Create();
        await restarted.RecoverAsync(default);
        var record = await RecordAsync();
        Assert.Null(record.Transition);
        Assert.Equal(1, record.Epoch);
        Assert.Equal(5, record.NextSegmentNumber);
        Assert.Single(record.History!);
        Assert.Equal(["shop/orders/0.#epoch.0", "shop/orders/1.#epoch.0", "shop/orders/2.#epoch.1", "shop/orders/3.#epoch.1", "shop/orders/4.#epoch.1"], _segments.Created.Order());
        Assert.Equal(["shop/orders/1.#epoch.0"], _segments.Sealed.Distinct());
        Assert.Equal(4, record.ActiveSegments.Count);

        // Nothing is left to do: a second recovery changes nothing.
        await Create().RecoverAsync(default);
        var again = await RecordAsync();
        Assert.Equal((1, record.History![0].TimeUnixMs), (again.Epoch, Assert.Single(again.History!).TimeUnixMs));
    }

    [Fact]
    public async Task A_crash_before_the_transition_is_recorded_leaves_the_stream_as_it_was()
    {
        _metadata.CrashAtSet(1, afterWrite: false);
        await Assert.ThrowsAsync<IOException>(() => Split(_controller));
        await Create().RecoverAsync(default);
        var record = await RecordAsync();
        Assert.Equal(0, record.Epoch);
        Assert.Null(record.Transition);
        Assert.Equal(2, record.ActiveSegments.Count);
    }

    [Fact]
    public async Task The_same_request_finishes_a_stalled_scale_and_another_one_is_refused()
    {
        _metadata.CrashAtSet(3, afterWrite: true);
        await Assert.ThrowsAsync<IOException>(() => Split(_controller));
        var described = await _controller.DescribeStreamAsync("shop", "orders", default);
        Assert.Equal("linked", described.Transition.Step);
        Assert.Equal([Seg1], described.Transition.SealSegmentIds);

        await AssertStatus(StatusCode.FailedPrecondition, "another scale is in progress (from epoch 0, at step 'linked'", () =>
            _controller.ScaleStreamAsync("shop", "orders", [Seg0], [new(0, 0.25), new(0.25, 0.5)], ControllerService.ManualReason, default));
        await AssertStatus(StatusCode.FailedPrecondition, "another scale is in progress", () => _controller.UpdateStreamAsync("shop", "orders", Fixed(8), default));

        var finished = await Split(_controller);
        Assert.Equal(1, finished.Epoch);
        Assert.Single(finished.History);
    }

    [Fact]
    public async Task A_step_older_than_the_timeout_is_driven_again()
    {
        var controller = Create(TimeSpan.FromSeconds(60));
        _metadata.CrashAtSet(2, afterWrite: true);
        await Assert.ThrowsAsync<IOException>(() => Split(controller));

        Assert.Equal(0, await controller.RedriveStaleTransitionsAsync(DateTimeOffset.UtcNow, default));
        Assert.NotNull((await RecordAsync()).Transition);
        Assert.Equal(1, await controller.RedriveStaleTransitionsAsync(DateTimeOffset.UtcNow.AddSeconds(61), default));
        var record = await RecordAsync();
        Assert.Null(record.Transition);
        Assert.Equal(1, record.Epoch);
    }

    [Fact]
    public async Task Bad_scales_get_statuses_that_say_what_to_change()
    {
        Task Scale(long[] ids, params KeyRangeRecord[] ranges) => _controller.ScaleStreamAsync("shop", "orders", ids, ranges, ControllerService.ManualReason, default);

        await AssertStatus(StatusCode.InvalidArgument, "at least one segment", () => Scale([], new KeyRangeRecord(0, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "new_ranges is empty", () => Scale([Seg1]));
        await AssertStatus(StatusCode.InvalidArgument, "named twice", () => Scale([Seg1, Seg1], new KeyRangeRecord(0.5, 1)));
        await AssertStatus(StatusCode.FailedPrecondition, "not a segment of stream shop/orders's current epoch 0", () => Scale([SegmentName.ComposeId(0, 7)], new KeyRangeRecord(0.5, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "must tile exactly the sealed segments' [0.5, 1): nothing covers [0.75", () => Scale([Seg1], new KeyRangeRecord(0.5, 0.75)));
        await AssertStatus(StatusCode.InvalidArgument, "reaches past the sealed range's end 0.5", () => Scale([Seg0], new KeyRangeRecord(0, 0.25), new KeyRangeRecord(0.25, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "no new range starts at 0.5", () => Scale([Seg1], new KeyRangeRecord(0.4, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "overlaps", () => Scale([Seg1], new KeyRangeRecord(0.5, 0.8), new KeyRangeRecord(0.7, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "needs 0 <= start < end <= 1", () => Scale([Seg1], new KeyRangeRecord(0.5, 0.5), new KeyRangeRecord(0.5, 1)));
        await AssertStatus(StatusCode.InvalidArgument, "narrower than 2^-32", () => Scale([Seg1], new KeyRangeRecord(0.5, 0.5 + 1e-12), new KeyRangeRecord(0.5 + 1e-12, 1)));
        await AssertStatus(StatusCode.FailedPrecondition, "more than its maximum of 64", () => Scale([Seg1], [.. Enumerable.Range(0, 64).Select(i => new KeyRangeRecord(0.5 + (i / 128.0), i == 63 ? 1 : 0.5 + ((i + 1) / 128.0)))]));
        await AssertStatus(StatusCode.NotFound, "does not exist", () => _controller.ScaleStreamAsync("shop", "missing", [Seg1], [new(0.5, 1)], ControllerService.ManualReason, default));

        // Segments that do not touch: one manual scale seals one run; the policy may coalesce several runs.
        await _controller.CreateStreamAsync("shop", "three", Fixed(3), default);
        long[] outer = [SegmentName.ComposeId(0, 0), SegmentName.ComposeId(0, 2)];
        KeyRangeRecord[] halves = [new(0, 1 / 6.0), new(1 / 6.0, 1 / 3.0), new(2 / 3.0, 5 / 6.0), new(5 / 6.0, 1)];
        await AssertStatus(StatusCode.InvalidArgument, "not adjacent", () => _controller.ScaleStreamAsync("shop", "three", outer, halves, ControllerService.ManualReason, default));
        await AssertStatus(StatusCode.InvalidArgument, "outside the sealed segments' ranges", () => _controller.ScaleStreamAsync("shop", "three", [SegmentName.ComposeId(0, 0)], [new(0, 1 / 3.0), new(0.5, 0.6)], "policy", default));
        var coalesced = await _controller.ScaleStreamAsync("shop", "three", outer, halves, "policy", default);
        Assert.Equal(5, coalesced.ActiveSegments.Count);
        await AssertStatus(StatusCode.FailedPrecondition, "already replaced in epoch 1", () => _controller.ScaleStreamAsync("shop", "three", [SegmentName.ComposeId(0, 0)], [new(0, 1 / 3.0)], ControllerService.ManualReason, default));

        await _controller.SealStreamAsync("shop", "orders", default);
        await AssertStatus(StatusCode.FailedPrecondition, "is sealed; a sealed stream does not scale", () => Split(_controller));
    }

    [Fact]
    public async Task Rate_policies_bound_the_segment_count()
    {
        var rate = new StreamConfiguration { Scaling = new ScalingPolicy { EventsPerSecond = new RateScaling { TargetRate = 100, MinSegments = 2, MaxSegments = 3 } } };
        var (_, info) = await _controller.CreateStreamAsync("shop", "rated", rate, default);
        Assert.Equal(2, info.ActiveSegments.Count);
        Assert.Equal(2, info.Config.Scaling.EventsPerSecond.ScaleFactor);
        await AssertStatus(StatusCode.FailedPrecondition, "more than its maximum of 3", () =>
            _controller.ScaleStreamAsync("shop", "rated", [Seg1], SplitOfSeg1, ControllerService.ManualReason, default));
        await AssertStatus(StatusCode.FailedPrecondition, "fewer than its minimum of 2", () =>
            _controller.ScaleStreamAsync("shop", "rated", [Seg0, Seg1], [new(0, 1)], ControllerService.ManualReason, default));

        await AssertStatus(StatusCode.InvalidArgument, "target of at least 1 KiB per second", () => _controller.CreateStreamAsync("shop", "bad",
            new StreamConfiguration { Scaling = new ScalingPolicy { KbytesPerSecond = new RateScaling { TargetRate = 0 } } }, default));
        await AssertStatus(StatusCode.InvalidArgument, "scale factor", () => _controller.CreateStreamAsync("shop", "bad",
            new StreamConfiguration { Scaling = new ScalingPolicy { KbytesPerSecond = new RateScaling { TargetRate = 5, ScaleFactor = 1 } } }, default));
        await AssertStatus(StatusCode.InvalidArgument, "1 <= min_segments <= max_segments <= 64", () => _controller.CreateStreamAsync("shop", "bad",
            new StreamConfiguration { Scaling = new ScalingPolicy { KbytesPerSecond = new RateScaling { TargetRate = 5, MinSegments = 4, MaxSegments = 3 } } }, default));
    }

    [Fact]
    public async Task Updating_to_a_rate_policy_records_it_and_a_fixed_count_rescales()
    {
        var rate = new StreamConfiguration { Scaling = new ScalingPolicy { KbytesPerSecond = new RateScaling { TargetRate = 512, ScaleFactor = 4 } } };
        var recorded = await _controller.UpdateStreamAsync("shop", "orders", rate, default);
        Assert.Equal(0, recorded.Epoch);
        Assert.Equal(512, recorded.Config.Scaling.KbytesPerSecond.TargetRate);
        Assert.Equal(64, recorded.Config.Scaling.KbytesPerSecond.MaxSegments);

        var rescaled = await _controller.UpdateStreamAsync("shop", "orders", Fixed(3), default);
        Assert.Equal(1, rescaled.Epoch);
        Assert.Equal(3, rescaled.Config.Scaling.Fixed.SegmentCount);
        Assert.Equal(["shop/orders/2.#epoch.1", "shop/orders/3.#epoch.1", "shop/orders/4.#epoch.1"], rescaled.ActiveSegments.Select(s => s.Segment));
        Assert.Equal(1.0 / 3, rescaled.ActiveSegments[1].KeyStart);
        Assert.Contains("fixed: 2 -> 3", rescaled.History[0].Reason);
        var middle = (await _controller.ListSegmentsAsync("shop", "orders", default)).Segments.Single(s => s.Segment.Segment == "shop/orders/3.#epoch.1");
        Assert.Equal([Seg0, Seg1], middle.PredecessorIds);

        Assert.Equal(1, (await _controller.UpdateStreamAsync("shop", "orders", Fixed(3), default)).Epoch);
    }

    [Fact]
    public async Task Successors_start_from_their_share_of_the_predecessors_load()
    {
        _loads.Reports["shop/orders/1.#epoch.0"] = new SegmentLoad { Segment = "shop/orders/1.#epoch.0", EventRates = { 800, 400 }, ByteRates = { 8000, 4000 }, AgeMs = 90_000 };
        await Split(_controller);
        var first = _segments.Seeds["shop/orders/2.#epoch.1"]!;
        Assert.Equal([200, 100], first.EventRates);
        Assert.Equal([2000, 1000], first.ByteRates);
        Assert.Equal(90_000, first.AgeMs);
        Assert.Equal([400, 200], _segments.Seeds["shop/orders/4.#epoch.1"]!.EventRates);
        Assert.Null(_segments.Seeds["shop/orders/0.#epoch.0"]);

        _loads.Reports["shop/orders/3.#epoch.1"] = new SegmentLoad { EventRates = { 10 }, AgeMs = 5 };
        _loads.Reports["shop/orders/4.#epoch.1"] = new SegmentLoad { EventRates = { 30 }, AgeMs = 7 };
        _loads.Hot.Add(new HotKey { SegmentId = SegmentName.ComposeId(1, 4), KeyStart = 0.75, KeyEnd = 0.76, Share = 0.9 });
        var merged = await _controller.ScaleStreamAsync("shop", "orders", [SegmentName.ComposeId(1, 3), SegmentName.ComposeId(1, 4)], [new(0.625, 1)], ControllerService.ManualReason, default);
        Assert.Equal([40], _segments.Seeds["shop/orders/5.#epoch.2"]!.EventRates);
        Assert.Equal(7, _segments.Seeds["shop/orders/5.#epoch.2"]!.AgeMs);
        Assert.Equal(0.9, Assert.Single(merged.HotKeys).Share);
    }

    [Fact]
    public async Task Successors_inherit_their_predecessors_writer_records_by_key_range()
    {
        var writer = ByteString.CopyFrom(new byte[16]);
        _segments.Writers["shop/orders/1.#epoch.0"] = [new WriterRecord { WriterId = writer, LastEventNumber = 41 }];
        await Split(_controller);
        foreach (var (segment, start, end) in new[] { ("2", 0.5, 0.625), ("3", 0.625, 0.75), ("4", 0.75, 1.0) })
        {
            var range = Assert.Single(Assert.Single(_segments.Writers[$"shop/orders/{segment}.#epoch.1"]).Inherited);
            Assert.Equal((start, end, 41L), (range.KeyStart, range.KeyEnd, range.LastEventNumber));
        }

        Assert.False(_segments.Writers.ContainsKey("shop/orders/0.#epoch.0"));
    }

    [Fact]
    public async Task After_a_scale_a_cut_of_the_current_epoch_drops_the_earlier_segments_whole_and_deleting_removes_every_epoch()
    {
        _segments.Infos["shop/orders/1.#epoch.0"] = new SegmentInfo { Segment = "shop/orders/1.#epoch.0", Length = 700 };
        await Split(_controller);
        var cut = await _controller.GetStreamCutAsync("shop", "orders", default);
        Assert.Equal(4, cut.Positions.Count);
        await _controller.TruncateStreamAsync(cut, default);
        Assert.Equal(700, _segments.Infos["shop/orders/1.#epoch.0"].StartOffset);

        await _controller.SealStreamAsync("shop", "orders", default);
        Assert.True(await _controller.DeleteStreamAsync("shop", "orders", default));
        Assert.Equal(5, _segments.Deleted.Distinct().Count());
    }

    private static async Task AssertStatus(StatusCode code, string message, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, error.StatusCode);
        Assert.Contains(message, error.Status.Detail);
    }

    private sealed class Loads : ISegmentLoads
    {
        public Dictionary<string, SegmentLoad> Reports { get; } = [];

        public List<HotKey> Hot { get; } = [];

        public SegmentLoad? Latest(string segment) => Reports.GetValueOrDefault(segment);

        public IReadOnlyList<HotKey> HotKeys(string scope, string stream) => Hot;
    }
}
