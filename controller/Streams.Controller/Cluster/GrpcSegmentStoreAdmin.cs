using System.Collections.Concurrent;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Grpc.Client;
using Streams.Common.Naming;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Cluster;

/// <summary>
/// Segment operations sent over gRPC to the segment store that owns the segment's container. While a container has
/// no owner or is moving (UNAVAILABLE), the call is retried against the current owner until the timeout.
/// </summary>
internal sealed class GrpcSegmentStoreAdmin(ClusterView cluster, int containerCount, TimeSpan timeout) : ISegmentStoreAdmin, IDisposable
{
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);

    public Task CreateSegmentAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, async channel =>
        {
            try
            {
                await channel.UnaryAsync(SegmentStoreApi.CreateSegment, new CreateSegmentRequest { Segment = segment }, CallOptions.WithTimeout(TimeSpan.FromSeconds(30), cancellationToken));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
            {
            }

            return true;
        }, cancellationToken);

    public Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, channel => channel.UnaryAsync(SegmentStoreApi.SealSegment, new SegmentRequest { Segment = segment }, CallOptions.WithTimeout(TimeSpan.FromSeconds(30), cancellationToken)), cancellationToken);

    public Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, channel => channel.UnaryAsync(SegmentStoreApi.DeleteSegment, new SegmentRequest { Segment = segment }, CallOptions.WithTimeout(TimeSpan.FromSeconds(30), cancellationToken)), cancellationToken);

    public Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken) =>
        CallAsync(segment, channel => channel.UnaryAsync(SegmentStoreApi.TruncateSegment, new TruncateSegmentRequest { Segment = segment, Offset = offset }, CallOptions.WithTimeout(TimeSpan.FromSeconds(30), cancellationToken)), cancellationToken);

    public Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(segment, channel => channel.UnaryAsync(SegmentStoreApi.GetSegmentInfo, new SegmentRequest { Segment = segment }, CallOptions.WithTimeout(TimeSpan.FromSeconds(30), cancellationToken)), cancellationToken);

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }

    private async Task<T> CallAsync<T>(string segment, Func<GrpcChannel, Task<T>> call, CancellationToken cancellationToken)
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
                    throw new RpcException(StatusCode.Unavailable, $"Container {container} has no segment store at the moment.");
                }

                return await call(_channels.GetOrAdd(owner.GrpcUri, uri => GrpcChannel.ForAddress(uri)));
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
