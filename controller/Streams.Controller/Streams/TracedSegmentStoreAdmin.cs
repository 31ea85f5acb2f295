using System.Diagnostics;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Streams;

/// <summary>
/// Gives each segment-store call of the controller a span of its own (named after the call, tagged with the segment),
/// so a stream operation's trace shows which store did what and which call failed. With no listener it only forwards.
/// </summary>
internal sealed class TracedSegmentStoreAdmin(ISegmentStoreAdmin inner) : ISegmentStoreAdmin
{
    public Task CreateSegmentAsync(string segment, CancellationToken cancellationToken, SegmentLoadSeed? seed = null) =>
        TraceAsync("CreateSegment", segment, async () =>
        {
            await inner.CreateSegmentAsync(segment, cancellationToken, seed);
            return true;
        });

    public Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken) =>
        TraceAsync("SealSegment", segment, () => inner.SealSegmentAsync(segment, cancellationToken));

    public Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken) =>
        TraceAsync("DeleteSegment", segment, async () =>
        {
            await inner.DeleteSegmentAsync(segment, cancellationToken);
            return true;
        });

    public Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken) =>
        TraceAsync("TruncateSegment", segment, () => inner.TruncateSegmentAsync(segment, offset, cancellationToken));

    public Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        TraceAsync("GetSegmentInfo", segment, () => inner.GetSegmentInfoAsync(segment, cancellationToken));

    public Task<WriterRecords> GetWriterRecordsAsync(string segment, CancellationToken cancellationToken) =>
        TraceAsync("GetWriterRecords", segment, () => inner.GetWriterRecordsAsync(segment, cancellationToken));

    public Task InheritWriterRecordsAsync(string segment, IReadOnlyList<WriterRecord> writers, CancellationToken cancellationToken) =>
        TraceAsync("InheritWriterRecords", segment, async () =>
        {
            await inner.InheritWriterRecordsAsync(segment, writers, cancellationToken);
            return true;
        });

    public Task<int> MergeSegmentsAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken) =>
        TraceAsync("MergeSegments", target, () => inner.MergeSegmentsAsync(target, sources, cancellationToken));

    public Task<int> MergePartsAsync(string target, IReadOnlyList<MergePart> parts, CancellationToken cancellationToken) =>
        TraceAsync("MergeParts", target, () => inner.MergePartsAsync(target, parts, cancellationToken));

    public Task<byte[]> ReadSealedAsync(string segment, CancellationToken cancellationToken) =>
        TraceAsync("ReadSealed", segment, () => inner.ReadSealedAsync(segment, cancellationToken));

    private static async Task<T> TraceAsync<T>(string name, string segment, Func<Task<T>> call)
    {
        using var activity = ControllerTracing.Source.StartActivity(name);
        activity?.SetTag("streams.segment", segment);
        try
        {
            return await call();
        }
        catch (Exception e) when (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }
}
