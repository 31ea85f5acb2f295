using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using Streams.Common.Grpc;
using Streams.Common.Naming;
using Streams.Contracts.SegmentStore;
using SegmentStoreClient = Streams.Contracts.SegmentStore.SegmentStore.SegmentStoreClient;

namespace Streams.Controller.Cluster;

/// <summary>
/// Segment operations sent over gRPC to the segment store that owns the segment's container. While a container has
/// no owner or is moving (UNAVAILABLE), the call is retried against the current owner until the timeout.
/// </summary>
public sealed class GrpcSegmentStoreAdmin(ClusterView cluster, int containerCount, TimeSpan timeout) : ISegmentStoreAdmin, IDisposable
{
    /// <summary>Each segment operation waits this long for its answer.</summary>
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, (GrpcChannel Channel, SegmentStoreClient Client)> _stores = new(StringComparer.Ordinal);

    public Task CreateSegmentAsync(string segment, CancellationToken cancellationToken, SegmentLoadSeed? seed = null) =>
        CallAsync(segment, async client =>
        {
            try
            {
                await client.CreateSegmentAsync(new CreateSegmentRequest { Segment = segment, Seed = seed }, GrpcChannels.Deadline(CallTimeout, cancellationToken));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
            {
            }

            return true;
        }, cancellationToken);

    public Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, async client => await client.SealSegmentAsync(new SegmentRequest { Segment = segment }, GrpcChannels.Deadline(CallTimeout, cancellationToken)), cancellationToken);

    public Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, async client => await client.DeleteSegmentAsync(new SegmentRequest { Segment = segment }, GrpcChannels.Deadline(CallTimeout, cancellationToken)), cancellationToken);

    public Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken) =>
        CallAsync(segment, async client => await client.TruncateSegmentAsync(new TruncateSegmentRequest { Segment = segment, Offset = offset }, GrpcChannels.Deadline(CallTimeout, cancellationToken)), cancellationToken);

    public Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, async client => await client.GetSegmentInfoAsync(new SegmentRequest { Segment = segment }, GrpcChannels.Deadline(CallTimeout, cancellationToken)), cancellationToken);

    public Task<WriterRecords> GetWriterRecordsAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, async client => await client.GetWriterRecordsAsync(new SegmentRequest { Segment = segment }, GrpcChannels.Deadline(CallTimeout, cancellationToken)), cancellationToken);

    public Task InheritWriterRecordsAsync(string segment, IReadOnlyList<WriterRecord> writers, CancellationToken cancellationToken) =>
        CallAsync(segment, async client =>
        {
            var request = new InheritWriterRecordsRequest { Segment = segment };
            request.Writers.AddRange(writers);
            return await client.InheritWriterRecordsAsync(request, GrpcChannels.Deadline(CallTimeout, cancellationToken));
        }, cancellationToken);

    public Task<int> MergeSegmentsAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken) =>
        CallAsync(target, async client =>
        {
            var request = new MergeSegmentsRequest { Target = target };
            request.Sources.AddRange(sources);
            return (await client.MergeSegmentsAsync(request, GrpcChannels.Deadline(CallTimeout, cancellationToken))).Merged;
        }, cancellationToken);

    public Task<int> MergePartsAsync(string target, IReadOnlyList<MergePart> parts, CancellationToken cancellationToken) =>
        CallAsync(target, async client =>
        {
            var request = new MergeSegmentsRequest { Target = target };
            request.Parts.AddRange(parts);
            return (await client.MergeSegmentsAsync(request, GrpcChannels.Deadline(CallTimeout, cancellationToken))).Merged;
        }, cancellationToken);

    public Task<byte[]> ReadSealedAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, client => SealedSegmentReads.ReadAsync(segment,
            async (offset, ct) => await client.ReadAsync(new ReadSegmentRequest { Segment = segment, Offset = offset }, GrpcChannels.Deadline(CallTimeout, ct)),
            async ct => await client.GetSegmentInfoAsync(new SegmentRequest { Segment = segment }, GrpcChannels.Deadline(CallTimeout, ct)), cancellationToken), cancellationToken);

    public void Dispose()
    {
        foreach (var (channel, _) in _stores.Values)
        {
            channel.Dispose();
        }
    }

    private async Task<T> CallAsync<T>(string segment, Func<SegmentStoreClient, Task<T>> call, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var delay = TimeSpan.FromMilliseconds(100);
        var container = ContainerMapper.ContainerOf(segment, containerCount);
        while (true)
        {
            var owner = cluster.OwnerOf(container);
            try
            {
                if (owner is null)
                {
                    throw new RpcException(new Status(StatusCode.Unavailable, $"Container {container} has no segment store at the moment."));
                }

                return await call(_stores.GetOrAdd(owner.GrpcUri, static uri =>
                {
                    var channel = GrpcChannels.Create(uri);
                    return (channel, new SegmentStoreClient(channel));
                }).Client);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < deadline)
            {
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
                await cluster.RefreshAsync(cancellationToken);
            }
        }
    }
}
