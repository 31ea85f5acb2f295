using Microsoft.Extensions.Logging.Abstractions;
using Grpc.Core;
using Streams.Coordination.Metadata;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;
using Streams.Testing;

namespace Streams.Controller.Tests.Streams;

public sealed class ControllerServiceTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("controller");
    private readonly RecordingSegmentStore _segments = new();
    private FileMetadataStore _metadata = null!;
    private ControllerService _controller = null!;

    public ValueTask InitializeAsync()
    {
        _metadata = FileMetadataStore.Open(_dir.Path);
        _controller = Create(_metadata, _segments);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _metadata.DisposeAsync();
        _dir.Dispose();
    }

    private static ControllerService Create(IMetadataStore metadata, ISegmentStoreAdmin segments) =>
        new(new StreamMetadataStore(metadata), segments, new Locator(), new ControllerOptions { MaxSegmentsPerStream = 64 }, NullLogger<ControllerService>.Instance);

    private static StreamConfiguration Fixed(int count) => new() { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = count } } };

    [Fact]
    public async Task Scopes_are_created_listed_and_deleted()
    {
        Assert.True(await _controller.CreateScopeAsync("b", default));
        Assert.True(await _controller.CreateScopeAsync("a", default));
        Assert.False(await _controller.CreateScopeAsync("a", default));
        Assert.Equal(["a", "b"], await _controller.ListScopesAsync(default));
        Assert.True(await _controller.DeleteScopeAsync("b", default));
        Assert.False(await _controller.DeleteScopeAsync("b", default));
    }

    [Fact]
    public async Task A_stream_gets_segments_covering_the_key_space()
    {
        await _controller.CreateScopeAsync("shop", default);
        var (created, info) = await _controller.CreateStreamAsync("shop", "orders", Fixed(3), default);
        Assert.True(created);
        Assert.Equal(StreamState.Active, info.State);
        Assert.Equal(3, info.ActiveSegments.Count);
        Assert.Equal(0.0, info.ActiveSegments[0].KeyStart);
        Assert.Equal(1.0, info.ActiveSegments[^1].KeyEnd);
        for (var i = 1; i < 3; i++)
        {
            Assert.Equal(info.ActiveSegments[i - 1].KeyEnd, info.ActiveSegments[i].KeyStart);
        }

        Assert.Equal(info.ActiveSegments.Select(s => s.Segment).Order(), _segments.Created.Order());
        Assert.Equal("shop/orders/0.#epoch.0", info.ActiveSegments[0].Segment);

        var (again, same) = await _controller.CreateStreamAsync("shop", "orders", Fixed(5), default);
        Assert.False(again);
        Assert.Equal(3, same.ActiveSegments.Count);
        Assert.Equal(["orders"], await _controller.ListStreamsAsync("shop", default));
    }

    [Fact]
    public async Task Bad_requests_get_statuses_that_say_what_to_change()
    {
        await _controller.CreateScopeAsync("shop", default);
        await AssertStatus(StatusCode.NotFound, "create it first", () => _controller.CreateStreamAsync("nope", "s", Fixed(1), default));
        await AssertStatus(StatusCode.InvalidArgument, "must start with", () => _controller.CreateStreamAsync("shop", "-bad", Fixed(1), default));
        await AssertStatus(StatusCode.InvalidArgument, "between 1 and 64", () => _controller.CreateStreamAsync("shop", "s", Fixed(0), default));
        await AssertStatus(StatusCode.InvalidArgument, "between 1 and 64", () => _controller.CreateStreamAsync("shop", "s", Fixed(65), default));
        await AssertStatus(StatusCode.NotFound, "does not exist", () => _controller.DescribeStreamAsync("shop", "missing", default));
        await AssertStatus(StatusCode.InvalidArgument, "not a segment name", () => _controller.GetSegmentEndpointAsync("shop/x", default));
        await AssertStatus(StatusCode.NotFound, "does not exist", () => _controller.GetSegmentEndpointAsync("shop/missing/0.#epoch.0", default));
        await AssertStatus(StatusCode.NotFound, "does not exist", () => _controller.ListStreamsAsync("nope", default));
    }

    [Fact]
    public async Task Only_segments_the_stream_has_get_an_endpoint()
    {
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", Fixed(3), default);

        Assert.Equal("shop/orders/2.#epoch.0", (await _controller.GetSegmentEndpointAsync("shop/orders/2.#epoch.0", default)).Segment);
        await AssertStatus(StatusCode.NotFound, "has no segment 3 of epoch 0: epoch 0 has segments 0, 1, 2.", () => _controller.GetSegmentEndpointAsync("shop/orders/3.#epoch.0", default));
        await AssertStatus(StatusCode.NotFound, "has no segment 0 of epoch 1: the stream is at epoch 0.", () => _controller.GetSegmentEndpointAsync("shop/orders/0.#epoch.1", default));
        await AssertStatus(StatusCode.NotFound, "without leading zeros: 'shop/orders/1.#epoch.0'", () => _controller.GetSegmentEndpointAsync("shop/orders/01.#epoch.0", default));

        // Sealed, its segments still hold its data, and readers still find them.
        await _controller.SealStreamAsync("shop", "orders", default);
        Assert.Equal("shop/orders/0.#epoch.0", (await _controller.GetSegmentEndpointAsync("shop/orders/0.#epoch.0", default)).Segment);
    }

    [Fact]
    public async Task Segments_of_earlier_epochs_get_an_endpoint()
    {
        // A stream as a scale leaves it: epoch 2 now, the segments it replaced kept with their epochs.
        await _controller.CreateScopeAsync("shop", default);
        var record = new StreamRecord("shop", "scaled", 2, StreamRecordState.Active, 2,
            [new SegmentRecord(3, 2, 0, 0.5), new SegmentRecord(4, 2, 0.5, 1)], 0,
            EarlierSegments: [new SegmentRecord(0, 0, 0, 1), new SegmentRecord(1, 1, 0, 0.5), new SegmentRecord(2, 1, 0.5, 1)]);
        Assert.True(await new StreamMetadataStore(_metadata).CreateStreamAsync(record, default));

        foreach (var segment in new[] { "shop/scaled/0.#epoch.0", "shop/scaled/2.#epoch.1", "shop/scaled/4.#epoch.2" })
        {
            Assert.Equal(segment, (await _controller.GetSegmentEndpointAsync(segment, default)).Segment);
        }

        await AssertStatus(StatusCode.NotFound, "has no segment 1 of epoch 0: epoch 0 has segment 0.", () => _controller.GetSegmentEndpointAsync("shop/scaled/1.#epoch.0", default));
        await AssertStatus(StatusCode.NotFound, "has no segment 3 of epoch 1: epoch 1 has segments 1, 2.", () => _controller.GetSegmentEndpointAsync("shop/scaled/3.#epoch.1", default));
        await AssertStatus(StatusCode.NotFound, "the stream is at epoch 2.", () => _controller.GetSegmentEndpointAsync("shop/scaled/5.#epoch.3", default));

        // Sealing seals the current epoch's segments (the earlier ones are sealed already); deleting deletes them all.
        await _controller.SealStreamAsync("shop", "scaled", default);
        Assert.Equal(["shop/scaled/3.#epoch.2", "shop/scaled/4.#epoch.2"], _segments.Sealed.Order());
        Assert.True(await _controller.DeleteStreamAsync("shop", "scaled", default));
        Assert.Equal(5, _segments.Deleted.Count);
    }

    [Fact]
    public async Task A_streams_retention_can_be_added_changed_and_removed_and_keeps_its_scaling()
    {
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", Fixed(3), default);
        var streams = new StreamMetadataStore(_metadata);

        var timed = await _controller.UpdateStreamAsync("shop", "orders", new StreamConfiguration { Retention = new RetentionPolicy { TimeMs = 60_000 } }, default);
        Assert.Equal(60_000, timed.Config.Retention.TimeMs);
        Assert.Equal(3, timed.ActiveSegments.Count);
        var sized = await _controller.UpdateStreamAsync("shop", "orders", new StreamConfiguration { Scaling = Fixed(3).Scaling, Retention = new RetentionPolicy { SizeBytes = 1 << 20 } }, default);
        Assert.Equal(1 << 20, sized.Config.Retention.SizeBytes);
        Assert.Equal(1 << 20, (await _controller.DescribeStreamAsync("shop", "orders", default)).Config.Retention.SizeBytes);

        await streams.SaveRetentionAsync("shop", "orders", new RetentionRecord(0, []), null, default); // cuts the retention service recorded
        var kept = await _controller.UpdateStreamAsync("shop", "orders", new StreamConfiguration(), default);
        Assert.Null(kept.Config.Retention);
        Assert.Null((await streams.GetStreamAsync("shop", "orders", default))!.Value.Record.RetentionSizeBytes);
        Assert.Null(await streams.GetRetentionAsync("shop", "orders", default));

        Assert.Equal(3, kept.Config.Scaling.Fixed.SegmentCount);
        Assert.Equal(0, kept.Epoch);
        await AssertStatus(StatusCode.InvalidArgument, "positive time or size", () => _controller.UpdateStreamAsync("shop", "orders", new StreamConfiguration { Retention = new RetentionPolicy { TimeMs = -1 } }, default));
        await AssertStatus(StatusCode.NotFound, "does not exist", () => _controller.UpdateStreamAsync("shop", "missing", new StreamConfiguration(), default));
        await AssertStatus(StatusCode.InvalidArgument, "must start with", () => _controller.UpdateStreamAsync("shop", "-bad", new StreamConfiguration(), default));
    }

    [Fact]
    public async Task Streams_are_sealed_then_deleted()
    {
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", Fixed(2), default);
        await AssertStatus(StatusCode.FailedPrecondition, "must be sealed", () => _controller.DeleteStreamAsync("shop", "orders", default));
        await AssertStatus(StatusCode.FailedPrecondition, "still has 1 stream", () => _controller.DeleteScopeAsync("shop", default));

        Assert.Equal((StreamState.Active, 2), await ActiveOf("orders"));
        var sealedInfo = await _controller.SealStreamAsync("shop", "orders", default);
        Assert.Equal(StreamState.Sealed, sealedInfo.State);
        Assert.Equal(2, _segments.Sealed.Count);

        // No segment takes appends any more; the description still names the segments that hold the data.
        Assert.Equal((StreamState.Sealed, 0), await ActiveOf("orders"));
        Assert.Equal(2, (await _controller.DescribeStreamAsync("shop", "orders", default)).ActiveSegments.Count);
        Assert.Equal(StreamState.Sealed, (await _controller.SealStreamAsync("shop", "orders", default)).State);

        Assert.True(await _controller.DeleteStreamAsync("shop", "orders", default));
        Assert.Equal(2, _segments.Deleted.Count);
        Assert.False(await _controller.DeleteStreamAsync("shop", "orders", default));
        Assert.True(await _controller.DeleteScopeAsync("shop", default));
    }

    [Fact]
    public async Task A_restarted_controller_finishes_a_half_done_creation()
    {
        await _controller.CreateScopeAsync("shop", default);
        _segments.FailCreates = true;
        await Assert.ThrowsAsync<RpcException>(() => _controller.CreateStreamAsync("shop", "orders", Fixed(2), default));

        // The intent is recorded; a new controller on the same metadata finishes the job.
        _segments.FailCreates = false;
        var restarted = Create(_metadata, _segments);
        await restarted.RecoverAsync(default);
        var info = await restarted.DescribeStreamAsync("shop", "orders", default);
        Assert.Equal(StreamState.Active, info.State);
        Assert.Equal(2, _segments.Created.Count);
    }

    [Fact]
    public async Task Stream_records_survive_a_metadata_restart()
    {
        await _controller.CreateScopeAsync("shop", default);
        await _controller.CreateStreamAsync("shop", "orders", Fixed(4), default);
        await _metadata.DisposeAsync();
        _metadata = FileMetadataStore.Open(_dir.Path);
        var info = await Create(_metadata, _segments).DescribeStreamAsync("shop", "orders", default);
        Assert.Equal(4, info.ActiveSegments.Count);
    }

    private async Task<(StreamState State, int Segments)> ActiveOf(string stream)
    {
        var active = await _controller.GetActiveSegmentsAsync("shop", stream, default);
        return (active.State, active.Segments.Count);
    }

    private static async Task AssertStatus(StatusCode code, string message, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, error.StatusCode);
        Assert.Contains(message, error.Status.Detail);
    }
}
