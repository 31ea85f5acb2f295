using Streams.Contracts.Controller;
using Streams.Controller.Scaling;
using Streams.SegmentStore;

namespace Streams.Hosting;

/// <summary>Standalone: the segment store's load reports go straight to the controller's tracker in the same process.</summary>
internal sealed class LocalLoadSink(SegmentLoadTracker loads) : ISegmentLoadSink
{
    public Task<bool> ReportAsync(LoadReport report, CancellationToken cancellationToken) => Task.FromResult(loads.Accept(report));
}
