using Grpc.Core;
using Streams.Testing;

namespace Streams.Client.Tests;

public sealed class StreamManagerTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private StreamsClient _client = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _client = _server.CreateClient();
    }

    public async ValueTask DisposeAsync()
    {
        await _client.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Streams_lifecycle_through_the_sdk()
    {
        var streams = _client.Streams;
        Assert.True(await streams.CreateScopeAsync("shop"));
        Assert.True(await streams.CreateStreamAsync("shop", "orders", StreamConfig.Fixed(4)));
        Assert.False(await streams.CreateStreamAsync("shop", "orders", StreamConfig.Fixed(4)));

        var description = await streams.DescribeStreamAsync("shop", "orders");
        Assert.Equal(4, description.SegmentCount);
        Assert.False(description.IsSealed);
        Assert.Equal(4, description.ActiveSegments.Count);
        Assert.Equal(["orders"], await streams.ListStreamsAsync("shop"));
        Assert.Contains("shop", await streams.ListScopesAsync());

        Assert.True((await streams.SealStreamAsync("shop", "orders")).IsSealed);
        Assert.True(await streams.DeleteStreamAsync("shop", "orders"));
        Assert.True(await streams.DeleteScopeAsync("shop"));
    }

    [Fact]
    public async Task Scaling_policies_and_manual_scales_through_the_sdk()
    {
        var streams = _client.Streams;
        await streams.CreateScopeAsync("elastic");
        var config = new StreamConfig { Scaling = ScalingPolicy.ByEventRate(500, scaleFactor: 3, minSegments: 2, maxSegments: 8), Retention = RetentionPolicy.ByTime(TimeSpan.FromHours(1)) };
        Assert.True(await streams.CreateStreamAsync("elastic", "rated", config));
        var rated = await streams.DescribeStreamAsync("elastic", "rated");
        Assert.Equal(config.Scaling, rated.Scaling);
        Assert.Equal(2, rated.ActiveSegments.Count);

        // A new fixed count rescales now; the retention stays.
        var fixedFour = await streams.UpdateScalingAsync("elastic", "rated", ScalingPolicy.Fixed(4));
        Assert.Equal(1, fixedFour.Epoch);
        Assert.Equal(4, fixedFour.ActiveSegments.Count);
        Assert.Equal(TimeSpan.FromHours(1), fixedFour.Retention!.Time);
        Assert.Equal(ScalingPolicy.Fixed(4), fixedFour.Scaling);

        var first = fixedFour.ActiveSegments[0];
        var split = await streams.ScaleStreamAsync("elastic", "rated", [first.Id], [(first.KeyStart, 0.125), (0.125, first.KeyEnd)]);
        Assert.Equal(2, split.Epoch);
        var scale = split.History[^1];
        Assert.Equal([first.Id], scale.SealedSegmentIds);
        Assert.Equal((2, "manual"), (scale.CreatedSegmentIds.Count, scale.Reason));
        Assert.Null(split.Transition);

        var error = await Assert.ThrowsAsync<StreamsException>(() => streams.ScaleStreamAsync("elastic", "rated", [first.Id], [(0, 0.25)]));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("already replaced in epoch 2", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ScalingPolicy.ByKBytesRate(100, scaleFactor: 1));
    }

    [Fact]
    public async Task Errors_carry_status_and_reason()
    {
        var error = await Assert.ThrowsAsync<StreamsException>(() => _client.Streams.CreateStreamAsync("missing", "s", StreamConfig.Fixed(1)));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        var invalid = await Assert.ThrowsAsync<StreamsException>(() => _client.Streams.CreateScopeAsync("bad name"));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("contains ' '", invalid.Message);
    }

    [Fact]
    public async Task An_unreachable_controller_is_reported_as_unavailable()
    {
        await using var client = StreamsClient.Create(new StreamsClientOptions { ControllerUri = $"http://127.0.0.1:{Ports.Free()}", ControlTimeout = TimeSpan.FromSeconds(2) });
        var error = await Assert.ThrowsAsync<StreamsException>(() => client.Streams.ListScopesAsync());
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }
}
