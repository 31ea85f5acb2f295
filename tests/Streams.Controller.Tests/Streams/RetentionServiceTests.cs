using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Contracts.Controller;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Streams;
using Streams.Testing;

namespace Streams.Controller.Tests.Streams;

public sealed class RetentionServiceTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _dir = new("retention");
    private readonly RecordingSegmentStore _segments = new();
    private FileMetadataStore _store = null!;

    public ValueTask InitializeAsync()
    {
        _store = FileMetadataStore.Open(_dir.Path);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        _dir.Dispose();
    }

    private static List<RetentionSample> Samples(params (int Seconds, long Total)[] points) =>
        [.. points.Select(p => new RetentionSample(Start.AddSeconds(p.Seconds).ToUnixTimeMilliseconds(), p.Total, new Dictionary<long, long>()))];

    /// <summary>A controller (and its retention service) over the shared metadata store, as a leader would run them.</summary>
    private (ControllerService Controller, RetentionService Retention) Controller(IReaderGroupBacklog? groups = null)
    {
        var streams = new StreamMetadataStore(_store);
        var controller = new ControllerService(streams, _segments, new Locator(), new ControllerOptions(), NullLogger<ControllerService>.Instance);
        return (controller, new RetentionService(controller, streams, Interval, NullLogger<RetentionService>.Instance, groups));
    }

    /// <summary>Subscribed groups' checkpoint cuts, as the reader-group service would give them (null: not known yet).</summary>
    private sealed class Subscribers : IReaderGroupBacklog
    {
        public List<StreamCut>? Cuts { get; set; } = [];

        public event Action<string, string>? BacklogChanged { add { } remove { } }

        public ValueTask<GroupBacklog?> GetBacklogAsync(string scope, string group, CancellationToken cancellationToken) => ValueTask.FromResult<GroupBacklog?>(null);

        public ValueTask<IReadOnlyList<StreamCut>?> GetSubscriberCutsAsync(string scope, string stream, CancellationToken cancellationToken) =>
            ValueTask.FromResult<IReadOnlyList<StreamCut>?>(Cuts);
    }

    private static StreamCut CutAt(StreamInfo info, params long[] offsets)
    {
        var cut = new StreamCut { Scope = "s", Stream = info.Stream };
        for (var i = 0; i < offsets.Length; i++)
        {
            cut.Positions[info.ActiveSegments[i].SegmentId] = offsets[i];
        }

        return cut;
    }

    [Fact]
    public async Task Consumption_retention_truncates_up_to_the_lowest_subscribed_checkpoint_within_the_minimum_and_maximum()
    {
        var groups = new Subscribers();
        var (controller, retention) = Controller(groups);
        var policy = new RetentionPolicy { Consumption = new ConsumptionRetention { MinSizeBytes = 1000, MaxSizeBytes = 100_000 } };
        var info = await CreateAsync(controller, "consumed", policy);
        Assert.Equal(1000, (await controller.DescribeStreamAsync("s", "consumed", default)).Config.Retention.Consumption.MinSizeBytes);
        Grow(info, 1000);
        await retention.RunOnceAsync(Start, default); // cut at 1000 per segment
        Grow(info, 3000);
        await retention.RunOnceAsync(Start.AddSeconds(30), default); // cut at 3000
        Grow(info, 4000);
        await retention.RunOnceAsync(Start.AddSeconds(60), default); // cut at 4000

        // No group has a checkpoint yet (no positions): nothing goes.
        groups.Cuts = [new StreamCut { Scope = "s", Stream = "consumed" }];
        await retention.RunOnceAsync(Start.AddSeconds(61), default);
        Assert.Equal(0, StartOf(info));

        // Two groups: the one behind decides. Segment 1 of the slower one is only at 2000: the cut at 1000 is the newest before both.
        groups.Cuts = [CutAt(info, 3500, 3500), CutAt(info, 3500, 2000)];
        await retention.RunOnceAsync(Start.AddSeconds(62), default);
        Assert.Equal(1000, StartOf(info));

        // Both past 4000, but the minimum keeps the last 1,000 bytes of 8,000: the cut at 3000 (2,000 after it), not 4000.
        groups.Cuts = [CutAt(info, 4000, 4000)];
        await retention.RunOnceAsync(Start.AddSeconds(63), default);
        Assert.Equal(3000, StartOf(info));
    }

    [Fact]
    public async Task Consumption_retention_without_subscribers_or_before_they_are_known_truncates_only_at_its_maximum()
    {
        var groups = new Subscribers { Cuts = null };
        var (controller, retention) = Controller(groups);
        var info = await CreateAsync(controller, "bounded", new RetentionPolicy { Consumption = new ConsumptionRetention { MaxSizeBytes = 5000 } });
        Grow(info, 1000);
        await retention.RunOnceAsync(Start, default);
        Grow(info, 2000);
        await retention.RunOnceAsync(Start.AddSeconds(30), default);
        Assert.Equal(0, StartOf(info)); // 2,000 bytes after the first cut: below the maximum

        Grow(info, 4000); // 6,000 bytes after the first cut
        await retention.RunOnceAsync(Start.AddSeconds(60), default);
        Assert.Equal(1000, StartOf(info));

        groups.Cuts = [];
        Grow(info, 6000);
        await retention.RunOnceAsync(Start.AddSeconds(90), default);
        Assert.Equal(2000, StartOf(info)); // the cut at 2000 has 8,000 bytes after it

        var bad = new RetentionPolicy { Consumption = new ConsumptionRetention { MinSizeBytes = 10, MaxSizeBytes = 5 } };
        var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => controller.CreateStreamAsync("s", "bad", new StreamConfiguration { Retention = bad }, default));
        Assert.Contains("minimum is above its maximum", refused.Status.Detail);
    }

    private static async Task<StreamInfo> CreateAsync(ControllerService controller, string stream, RetentionPolicy retention)
    {
        await controller.CreateScopeAsync("s", default);
        var config = new StreamConfiguration { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = 2 } }, Retention = retention };
        return (await controller.CreateStreamAsync("s", stream, config, default)).Info;
    }

    /// <summary>Every segment of the stream grows to <paramref name="length"/> bytes.</summary>
    private void Grow(StreamInfo info, long length)
    {
        foreach (var segment in info.ActiveSegments)
        {
            _segments.Infos.GetOrAdd(segment.Segment, s => new Contracts.SegmentStore.SegmentInfo { Segment = s }).Length = length;
        }
    }

    private long StartOf(StreamInfo info) => _segments.Infos[info.ActiveSegments[0].Segment].StartOffset;

    [Fact]
    public void Time_retention_truncates_at_the_newest_cut_older_than_the_retention()
    {
        var samples = Samples((0, 0), (10, 100), (20, 200), (30, 300));
        Assert.Equal(1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: 15_000, sizeBytes: null));
        Assert.Equal(-1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: 60_000, sizeBytes: null));
    }

    [Fact]
    public void Size_retention_keeps_at_least_the_limit_after_the_cut()
    {
        var samples = Samples((0, 0), (10, 100), (20, 200), (30, 300));
        Assert.Equal(1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 150));
        Assert.Equal(2, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 100));
        Assert.Equal(-1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 301));
    }

    [Fact]
    public void Cuts_are_spaced_by_a_sixteenth_of_the_policy_and_only_when_the_stream_moved()
    {
        var last = Samples((0, 1000))[0];
        const long hour = 3_600_000;
        Assert.True(RetentionService.ShouldRecord(null, Start, 0, hour, null, Interval));
        Assert.False(RetentionService.ShouldRecord(last, Start.AddMinutes(3), 2000, hour, null, Interval));
        Assert.True(RetentionService.ShouldRecord(last, Start.AddMinutes(4), 2000, hour, null, Interval));
        Assert.False(RetentionService.ShouldRecord(last, Start.AddHours(5), 1000, hour, null, Interval)); // nothing new
        Assert.False(RetentionService.ShouldRecord(last, Start.AddSeconds(20), 2000, 1000, null, Interval)); // never faster than the interval

        Assert.False(RetentionService.ShouldRecord(last, Start.AddSeconds(30), 1000 + 6249, null, 100_000, Interval));
        Assert.True(RetentionService.ShouldRecord(last, Start.AddSeconds(30), 1000 + 6250, null, 100_000, Interval));
    }

    [Fact]
    public void Too_many_cuts_are_thinned_keeping_the_oldest_and_the_newest()
    {
        var samples = Samples([.. Enumerable.Range(0, RetentionService.MaxSamples + 1).Select(i => (i, (long)i))]);
        var thinned = RetentionService.Thin(samples);
        Assert.True(thinned.Count <= (RetentionService.MaxSamples / 2) + 2);
        Assert.Equal(0, thinned[0].Total);
        Assert.Equal(RetentionService.MaxSamples, thinned[^1].Total);
        var few = samples[..RetentionService.MaxSamples];
        Assert.Same(few, RetentionService.Thin(few));
    }

    [Fact]
    public async Task A_new_leader_truncates_at_cuts_its_predecessor_recorded()
    {
        var (first, firstRetention) = Controller();
        var info = await CreateAsync(first, "timed", new RetentionPolicy { TimeMs = 3_600_000 });
        Grow(info, 1000);
        await firstRetention.RunOnceAsync(Start, default); // cut at 1000 per segment
        Grow(info, 5000);
        await firstRetention.RunOnceAsync(Start.AddMinutes(10), default); // cut at 5000
        Assert.Equal(0, StartOf(info));

        // The first leader is gone; the next one knows nothing but the metadata store.
        var (_, next) = Controller();
        Grow(info, 9000);
        await next.RunOnceAsync(Start.AddMinutes(61), default);
        Assert.Equal(1000, StartOf(info)); // an hour after the first cut: truncated there, not an hour after taking over
        await next.RunOnceAsync(Start.AddMinutes(71), default);
        Assert.Equal(5000, StartOf(info));
    }

    [Fact]
    public async Task Streams_created_through_another_controller_are_retained_too()
    {
        var (leader, retention) = Controller();
        await retention.RunOnceAsync(Start, default); // leading before the stream exists
        var (other, _) = Controller();
        var info = await CreateAsync(other, "sized", new RetentionPolicy { SizeBytes = 10_000 });
        Grow(info, 1000);
        await retention.RunOnceAsync(Start.AddSeconds(30), default);
        Grow(info, 9000); // 16,000 bytes written after the first cut
        await retention.RunOnceAsync(Start.AddSeconds(60), default);
        Assert.Equal(1000, StartOf(info));
        Assert.Contains(leader.KnownStreams, r => r.Stream == "sized");

        await other.SealStreamAsync("s", "sized", default);
        await other.DeleteStreamAsync("s", "sized", default);
        await retention.RunOnceAsync(Start.AddSeconds(90), default);
        Assert.DoesNotContain(leader.KnownStreams, r => r.Stream == "sized"); // the leader's gauges forget it too
    }

    [Fact]
    public async Task A_deleted_stream_takes_its_cuts_with_it_and_a_new_one_of_the_same_name_starts_afresh()
    {
        var (controller, retention) = Controller();
        var info = await CreateAsync(controller, "again", new RetentionPolicy { TimeMs = 60_000 });
        Grow(info, 5000);
        await retention.RunOnceAsync(Start, default);
        Assert.NotNull(await new StreamMetadataStore(_store).GetRetentionAsync("s", "again", default));

        await controller.SealStreamAsync("s", "again", default);
        await controller.DeleteStreamAsync("s", "again", default);
        Assert.Null(await new StreamMetadataStore(_store).GetRetentionAsync("s", "again", default));

        // Cuts left behind by a crash between the two deletions are not applied to the next stream of that name.
        await new StreamMetadataStore(_store).SaveRetentionAsync("s", "again", new RetentionRecord(1, [new RetentionSample(Start.ToUnixTimeMilliseconds(), 10_000, new Dictionary<long, long> { [0] = 5000, [1] = 5000 })]), null, default);
        var (fresh, freshRetention) = Controller();
        var recreated = await CreateAsync(fresh, "again", new RetentionPolicy { TimeMs = 60_000 });
        _segments.Infos.Clear();
        Grow(recreated, 6000);
        await freshRetention.RunOnceAsync(Start.AddMinutes(5), default);
        Assert.Equal(0, StartOf(recreated));
        await freshRetention.RunOnceAsync(Start.AddMinutes(7), default); // a minute after its own first cut
        Assert.Equal(6000, StartOf(recreated));
    }

    [Fact]
    public async Task Size_retention_counts_the_bytes_of_segments_a_scale_sealed()
    {
        var (controller, retention) = Controller();
        var info = await CreateAsync(controller, "scaled", new RetentionPolicy { SizeBytes = 10_000 });
        Grow(info, 1000);
        await retention.RunOnceAsync(Start, default); // cut at 2,000 bytes in all

        var upper = info.ActiveSegments[1];
        var scaled = await controller.ScaleStreamAsync("s", "scaled", [upper.SegmentId], [new(0.5, 0.75), new(0.75, 1)], ControllerService.ManualReason, default);
        Grow(scaled, 3000);
        _segments.Infos[info.ActiveSegments[0].Segment].Length = 5000;

        // 5,000 + 3,000 + 3,000 now, and segment 1's 1,000 before the scale: 10,000 written after the cut.
        await retention.RunOnceAsync(Start.AddSeconds(30), default);
        Assert.Equal(1000, StartOf(info));
        Assert.Equal(1000, _segments.Infos[upper.Segment].StartOffset);
    }
}
