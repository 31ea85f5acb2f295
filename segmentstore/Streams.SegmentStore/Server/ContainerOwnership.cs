using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;

namespace Streams.SegmentStore.Server;

/// <summary>
/// Runs exactly the containers the controller assigned to this segment store. It watches the assignment, starts
/// newly assigned containers (their recovery fences the previous owner) and stops the ones moved away.
/// <para>
/// Every start rests on an assignment read after the container was last lost here (<see cref="SegmentStoreService"/>'s
/// ownership views): the view is taken before each read, so a pass that read the assignment before a container failed
/// (fenced by the owner the controller chose meanwhile) cannot take it back. Starts run in the background, so the
/// loop keeps following the assignment while containers recover, and a container moved away while it recovers is
/// stopped at once.
/// </para>
/// <para>
/// When the metadata store's session is lost, this store's registration is gone and the controller may already have
/// given its containers to others: every container stops at once, recovering ones included, wherever the assignment
/// loop is (it may be stuck retrying a read against an unreachable store), and only the assignment read with the new
/// session decides what runs again. A store cut off from ZooKeeper learns of the loss without reaching it, once the
/// session timeout has passed with no answer (the ZooKeeper client's rule). Even if that came too late, fencing
/// guarantees an old owner can write nothing, and it confirms ownership before deleting anything from Tier 2.
/// </para>
/// <para>
/// The store also publishes which containers it serves (<see cref="ClusterPaths.ServingBy"/>), so that the controller
/// moves a container to a rejoining store only once the previous move is served.
/// </para>
/// </summary>
public sealed class ContainerOwnership
{
    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often the served set is compared with the one published (in memory; a write only when it changed): a moved
    /// container is known to serve within this much of its recovery's end, well below a recovery's duration.
    /// </summary>
    private static readonly TimeSpan ServingPoll = TimeSpan.FromMilliseconds(100);

    private readonly SegmentStoreService _service;
    private readonly IMetadataStore _store;
    private readonly string _storeId;
    private readonly ILogger _logger;
    private readonly Task[] _starts;
    private volatile HashSet<int> _owned = [];

    public ContainerOwnership(SegmentStoreService service, IMetadataStore store, string storeId, ILogger logger)
    {
        _service = service;
        _store = store;
        _storeId = storeId;
        _logger = logger;
        _starts = Enumerable.Repeat(Task.CompletedTask, service.ContainerCount).ToArray();
        service.ConfirmOwnershipAsync = ConfirmAsync;
    }

    /// <summary>Containers this store is assigned now.</summary>
    public IReadOnlyCollection<int> Owned => _owned;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var stopping = StopOnSessionLossAsync(cancellationToken);
        var publishing = PublishServingAsync(cancellationToken);
        await RetryLoop.RunAsync("Following the container assignment", async token =>
        {
            var view = _service.CurrentView;
            var session = _store.SessionLost;
            var (value, changed) = await _store.GetAndWatchAsync(ClusterPaths.Assignment, token);
            var assignment = value is { } v ? ClusterPaths.Deserialize<ContainerAssignment>(v.Data) : ContainerAssignment.Empty;
            var desired = assignment.OwnedBy(_storeId).ToHashSet();
            if (session.IsCompleted)
            {
                return; // read with a session that is gone: read again with the new one
            }

            _owned = desired;
            await ApplyAsync(desired, view, token);
            await Task.WhenAny(changed, session, Task.Delay(RetryInterval, token));
        }, _logger, null, cancellationToken);

        await stopping;
        await publishing;
        await Task.WhenAll(_starts);
    }

    /// <summary>
    /// Keeps <see cref="ClusterPaths.ServingBy"/> equal to the containers serving here: rewritten when that set changes,
    /// and when the node changes under it (it vanished with a session, or a previous process's session took it along).
    /// </summary>
    private async Task PublishServingAsync(CancellationToken cancellationToken)
    {
        var path = ClusterPaths.ServingBy(_storeId);
        int[]? published = null;
        var changed = Task.CompletedTask;
        await RetryLoop.RunAsync("Publishing the containers this store serves", async token =>
        {
            var serving = Enumerable.Range(0, _service.ContainerCount).Where(_service.IsServing).ToArray();
            if (published is null || changed.IsCompleted || !published.AsSpan().SequenceEqual(serving))
            {
                published = null;
                var data = ClusterPaths.Serialize(new SegmentStoreServing(serving));
                if (!await _store.TryCreateEphemeralAsync(path, data, token))
                {
                    await _store.TrySetAsync(path, data, -1, token);
                }

                (_, changed) = await _store.GetAndWatchAsync(path, token);
                published = serving;
            }

            await Task.WhenAny(changed, Task.Delay(ServingPoll, token));
        }, _logger, null, cancellationToken);
    }

    /// <summary>Reads the assignment now: whether it gives <paramref name="id"/> to this store.</summary>
    private async Task<bool> ConfirmAsync(int id, CancellationToken cancellationToken)
    {
        var value = await _store.GetAsync(ClusterPaths.Assignment, cancellationToken);
        return value is { } v && ClusterPaths.Deserialize<ContainerAssignment>(v.Data).Owners.TryGetValue(id, out var owner) && owner == _storeId;
    }

    /// <summary>Stops every container each time a session is lost, whatever the assignment loop is doing.</summary>
    private async Task StopOnSessionLossAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _store.SessionLost.WaitAsync(cancellationToken);
                _logger.LogWarning("Session lost: stopping every container until the assignment is read again.");
                _owned = [];
                await _service.StopAllAsync();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task ApplyAsync(HashSet<int> desired, long view, CancellationToken cancellationToken)
    {
        var stops = Enumerable.Range(0, _service.ContainerCount).Where(id => !desired.Contains(id) && _service.IsRunning(id)).Select(_service.StopAsync);
        await Task.WhenAll(stops);
        foreach (var id in desired)
        {
            if (!_service.IsRunning(id) && _starts[id].IsCompleted)
            {
                _starts[id] = StartAsync(id, view, cancellationToken);
            }
        }
    }

    private async Task StartAsync(int id, long view, CancellationToken cancellationToken)
    {
        try
        {
            await _service.StartOwnedAsync(id, view, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Retried at the next pass (every few seconds), e.g. once enough bookies are back.
            _logger.LogError("Container {Container} could not start: {Error}", id, e.Message);
        }
    }
}
