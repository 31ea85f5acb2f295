using Microsoft.Extensions.Logging;
using Streams.Common.Naming;
using Streams.Common.Resilience;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;
using Streams.Contracts.Controller;

namespace Streams.Controller.Cluster;

/// <summary>
/// The controller's live picture of the cluster: the container assignment and the registered segment stores, kept
/// current by watches. It answers "which segment store serves this segment" without a round trip.
/// </summary>
public sealed class ClusterView : ISegmentLocator, IAsyncDisposable
{
    private readonly IMetadataStore _store;
    private readonly int _containerCount;
    private readonly ILogger _logger;
    private readonly BackgroundRetryLoop _follow = new();
    private volatile ContainerAssignment _assignment = ContainerAssignment.Empty;
    private volatile IReadOnlyDictionary<string, SegmentStoreRegistration> _stores = new Dictionary<string, SegmentStoreRegistration>();

    public ClusterView(IMetadataStore store, int containerCount, ILogger logger)
    {
        _store = store;
        _containerCount = containerCount;
        _logger = logger;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        _follow.Start("Refreshing the cluster view", async token =>
        {
            var (_, assignmentChanged) = await _store.GetAndWatchAsync(ClusterPaths.Assignment, token);
            var (_, storesChanged) = await _store.GetChildrenAndWatchAsync(ClusterPaths.SegmentStores, token);
            await RefreshAsync(token);
            await Task.WhenAny(assignmentChanged, storesChanged, Task.Delay(TimeSpan.FromSeconds(10), token));
        }, _logger);
    }

    public SegmentEndpoint? Locate(string segment) => OwnerOf(ContainerMapper.ContainerOf(segment, _containerCount)) is { } store
        ? new SegmentEndpoint { Segment = segment, Host = store.Host, DataPort = store.DataPort, GrpcUri = store.GrpcUri }
        : null;

    /// <summary>The live segment store that owns a container, or null while it has none.</summary>
    public SegmentStoreRegistration? OwnerOf(int container) =>
        _assignment.Owners.TryGetValue(container, out var id) && _stores.TryGetValue(id, out var store) ? store : null;

    /// <summary>Reads the assignment and registrations again now (after an operation found them stale).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var assignment = await _store.GetAsync(ClusterPaths.Assignment, cancellationToken);
        _assignment = assignment is { } a ? ClusterPaths.Deserialize<ContainerAssignment>(a.Data) : ContainerAssignment.Empty;
        var ids = await _store.GetChildrenAsync(ClusterPaths.SegmentStores, cancellationToken);
        _stores = (await ClusterPaths.ReadSegmentStoresAsync(_store, ids, cancellationToken)).ToDictionary(r => r.Id, StringComparer.Ordinal);
    }

    public ValueTask DisposeAsync() => _follow.StopAsync();
}
