using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Controller.Scaling;
using Streams.Controller.Server;
using Streams.Controller.Streams;
using Streams.Controller.Tests.Scaling;
using Streams.Controller.Tests.Streams;

namespace Streams.Controller.Tests.Server;

public sealed class GrpcControllerServiceTests : IAsyncDisposable
{
    private readonly TempMetadataStore _temp = new("grpc-controller");

    private FileMetadataStore _metadata => _temp.Store;

    public ValueTask DisposeAsync() => _temp.DisposeAsync();

    [Fact]
    public async Task ReportLoad_is_accepted_by_the_leader_only_and_reaches_its_tracker()
    {
        var streams = new StreamMetadataStore(_metadata);
        Assert.True(await streams.CreateScopeAsync("shop", default));
        Assert.True(await streams.CreateStreamAsync(ScalePlannerTests.Record(1), default));
        var leading = false;
        ControllerService? known = null;
        var loads = new SegmentLoadTracker((scope, stream) => known?.Known(scope, stream), () => leading);
        var controller = new ControllerService(streams, new RecordingSegmentStore(), new Locator(), new ControllerOptions(), NullLogger<ControllerService>.Instance, loads);
        known = controller;
        await controller.ListAllStreamsAsync(default);
        var report = ScalePlannerTests.Report(ScalePlannerTests.Load(1, 1, 1, 1, 1000), "shop/orders/0.#epoch.0");

        Assert.False((await new GrpcControllerService(controller, loads).ReportLoad(report, null!)).Accepted);
        Assert.False((await new GrpcControllerService(controller).ReportLoad(report, null!)).Accepted); // no tracker: never leads for load
        leading = true;
        Assert.True((await new GrpcControllerService(controller, loads).ReportLoad(report, null!)).Accepted);
        Assert.Equal(1000, loads.Latest("shop/orders/0.#epoch.0")!.AgeMs);
    }
}
