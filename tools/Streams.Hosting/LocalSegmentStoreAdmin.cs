using Grpc.Core;
using Streams.Contracts.SegmentStore;
using Streams.Controller;
using Streams.Controller.Cluster;
using Streams.SegmentStore.Server;

namespace Streams.Hosting;

/// <summary>
/// The controller's segment operations when controller and segment store share a process (standalone):
/// direct calls, retried while a container is recovering, idempotent as the controller requires.
/// </summary>
internal sealed class LocalSegmentStoreAdmin(SegmentRequests requests, TimeSpan timeout) : ISegmentStoreAdmin
{
    public Task CreateSegmentAsync(string segment, CancellationToken cancellationToken, SegmentLoadSeed? seed = null) =>
        RetryAsync(async ct =>
        {
            try
            {
                await requests.CreateAsync(new CreateSegmentRequest { Segment = segment, Seed = seed }, ct);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
            {
            }

            return true;
        }, cancellationToken);

    public Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken) =>
        RetryAsync(ct => requests.SealAsync(new SegmentRequest { Segment = segment }, ct), cancellationToken);

    public Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken) =>
        RetryAsync(ct => requests.DeleteAsync(new SegmentRequest { Segment = segment }, ct), cancellationToken);

    public Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken) =>
        RetryAsync(ct => requests.TruncateAsync(new TruncateSegmentRequest { Segment = segment, Offset = offset }, ct), cancellationToken);

    public Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        RetryAsync(_ => Task.FromResult(requests.GetInfo(new SegmentRequest { Segment = segment })), cancellationToken);

    public Task<WriterRecords> GetWriterRecordsAsync(string segment, CancellationToken cancellationToken) =>
        RetryAsync(ct => requests.GetWriterRecordsAsync(new SegmentRequest { Segment = segment }, ct), cancellationToken);

    public Task InheritWriterRecordsAsync(string segment, IReadOnlyList<WriterRecord> writers, CancellationToken cancellationToken) =>
        RetryAsync(ct =>
        {
            var request = new InheritWriterRecordsRequest { Segment = segment };
            request.Writers.AddRange(writers);
            return requests.InheritWriterRecordsAsync(request, ct);
        }, cancellationToken);

    public Task<int> MergeSegmentsAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken) =>
        RetryAsync(async ct =>
        {
            var request = new MergeSegmentsRequest { Target = target };
            request.Sources.AddRange(sources);
            return (await requests.MergeAsync(request, ct)).Merged;
        }, cancellationToken);

    public Task<int> MergePartsAsync(string target, IReadOnlyList<MergePart> parts, CancellationToken cancellationToken) =>
        RetryAsync(async ct =>
        {
            var request = new MergeSegmentsRequest { Target = target };
            request.Parts.AddRange(parts);
            return (await requests.MergeAsync(request, ct)).Merged;
        }, cancellationToken);

    public Task<byte[]> ReadSealedAsync(string segment, CancellationToken cancellationToken) =>
        RetryAsync(ct => SealedSegmentReads.ReadAsync(segment, async (offset, token) =>
        {
            using var read = await requests.ReadAsync(new ReadSegmentRequest { Segment = segment, Offset = offset }, token);
            return new ReadSegmentReply { Status = read.Status, Offset = read.Offset, SegmentLength = read.SegmentLength, StartOffset = read.StartOffset, Data = Google.Protobuf.ByteString.CopyFrom(System.Buffers.BuffersExtensions.ToArray(read.Data)) };
        }, _ => Task.FromResult(requests.GetInfo(new SegmentRequest { Segment = segment })), ct), cancellationToken);

    private async Task<T> RetryAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            try
            {
                return await operation(cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < deadline)
            {
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }
        }
    }
}
