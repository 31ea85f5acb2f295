using Streams.Contracts.Controller;

namespace Streams.SegmentStore;

/// <summary>
/// Where a segment store sends its load reports: the leading controller (over gRPC in a cluster, a direct call in
/// standalone). Returns false when the receiver does not lead, so the sender looks for the leader again.
/// </summary>
public interface ISegmentLoadSink
{
    Task<bool> ReportAsync(LoadReport report, CancellationToken cancellationToken);
}
