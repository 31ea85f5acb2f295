using Microsoft.Extensions.Logging;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;

namespace Streams.Controller.Cluster;

/// <summary>
/// The leading controller's job: keep every container assigned to a live segment store, evenly. It watches the
/// segment store registrations; when a store vanishes (its session expired: crashed, or cut off) its containers go to
/// the least loaded live stores within moments, and when a store joins, containers move to it until loads differ by at
/// most one. The assignment is replaced by compare-and-set, so a deposed leader cannot overwrite a newer one.
/// <para>
/// Moving a container between two live stores costs its writers one recovery (the old owner stops it, the new one
/// fences and replays its log). So such moves, made only to even the load out, go one at a time: the next container
/// moves once every container is served by the store it is assigned to (each store publishes what it serves at
/// <see cref="ClusterPaths.ServingBy"/>). A rejoining store thus stalls each moved container for one recovery, never
/// several recovering at once, and no container moves while a failover is still recovering. Containers of a dead
/// store are not moves: they go at once.
/// </para>
/// <para>
/// A store counts as dead when its registration is gone or, sooner, when <see cref="SegmentStoreProbe"/> finds its
/// process gone (its ports refuse connections): a crashed store's containers then move within about half a second
/// instead of after its session timeout. A frozen store is left to the session timeout.
/// </para>
/// </summary>
public sealed class ContainerBalancer(IMetadataStore store, int containerCount, ILogger logger, ProbeOptions? probeOptions = null)
{
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(30);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var probe = new SegmentStoreProbe(probeOptions ?? new ProbeOptions(), logger);
        while (!cancellationToken.IsCancellationRequested)
        {
            var probed = probe.Changed;
            var (registered, storesChanged) = await store.GetChildrenAndWatchAsync(ClusterPaths.SegmentStores, cancellationToken);
            probe.Track(await ClusterPaths.ReadSegmentStoresAsync(store, registered, cancellationToken));
            var live = registered.Where(id => !probe.IsDead(id)).ToList();
            var stored = await store.GetAsync(ClusterPaths.Assignment, cancellationToken);
            var current = stored is { } s ? ClusterPaths.Deserialize<ContainerAssignment>(s.Data) : ContainerAssignment.Empty;
            var serving = new Dictionary<string, IReadOnlySet<int>>(StringComparer.Ordinal);
            var servingChanged = new List<Task> { storesChanged, probed, Task.Delay(RecheckInterval, cancellationToken) };
            foreach (var id in live)
            {
                var (value, changed) = await store.GetAndWatchAsync(ClusterPaths.ServingBy(id), cancellationToken);
                serving[id] = value is { } v ? ClusterPaths.Deserialize<SegmentStoreServing>(v.Data).Containers.ToHashSet() : new HashSet<int>();
                servingChanged.Add(changed);
            }

            var next = Step(current, live, serving, containerCount);
            if (!ReferenceEquals(next, current))
            {
                var written = stored is { } existing
                    ? await store.TrySetAsync(ClusterPaths.Assignment, ClusterPaths.Serialize(next), existing.Version, cancellationToken) is not null
                    : await store.TryCreateAsync(ClusterPaths.Assignment, ClusterPaths.Serialize(next), cancellationToken);
                if (written)
                {
                    logger.LogInformation("Container assignment {Generation}: {Summary}", next.Generation,
                        string.Join(", ", next.Owners.GroupBy(o => o.Value).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} owns {g.Count()}")));
                }

                continue;
            }

            await Task.WhenAny(servingChanged);
        }
    }

    /// <summary>
    /// The next assignment on the way to <see cref="Balance"/>'s: containers without a live owner are assigned at once;
    /// otherwise one container moves between live stores, and only when every container is served by its assigned
    /// store per <paramref name="serving"/>. Returns <paramref name="current"/> itself when nothing moves now.
    /// </summary>
    internal static ContainerAssignment Step(ContainerAssignment current, IReadOnlyList<string> live, IReadOnlyDictionary<string, IReadOnlySet<int>> serving, int containerCount)
    {
        var target = Balance(current, live, containerCount);
        if (ReferenceEquals(target, current))
        {
            return current;
        }

        var owners = new Dictionary<int, string>(current.Owners);
        var orphans = false;
        var moves = new List<int>();
        for (var id = 0; id < containerCount; id++)
        {
            var owner = current.Owners.GetValueOrDefault(id);
            if (owner is null || !live.Contains(owner, StringComparer.Ordinal))
            {
                owners[id] = target.Owners[id];
                orphans = true;
            }
            else if (target.Owners[id] != owner)
            {
                moves.Add(id);
            }
        }

        if (!orphans)
        {
            var settled = current.Owners.All(o => serving.TryGetValue(o.Value, out var served) && served.Contains(o.Key));
            if (!settled || moves.Count == 0)
            {
                return current;
            }

            owners[moves[0]] = target.Owners[moves[0]];
        }

        owners.Keys.Where(id => id >= containerCount).ToList().ForEach(id => owners.Remove(id));
        return new ContainerAssignment(current.Generation + 1, owners);
    }

    /// <summary>
    /// The assignment to use for <paramref name="live"/> stores: containers stay where they are while their store lives
    /// and loads stay within one of each other; the rest go to the least loaded stores. Returns <paramref name="current"/>
    /// itself when nothing needs to move.
    /// </summary>
    internal static ContainerAssignment Balance(ContainerAssignment current, IReadOnlyList<string> live, int containerCount)
    {
        if (live.Count == 0)
        {
            return current;
        }

        var load = live.ToDictionary(s => s, _ => new List<int>(), StringComparer.Ordinal);
        var unassigned = new List<int>();
        for (var id = 0; id < containerCount; id++)
        {
            if (current.Owners.TryGetValue(id, out var owner) && load.TryGetValue(owner, out var owned))
            {
                owned.Add(id);
            }
            else
            {
                unassigned.Add(id);
            }
        }

        var most = (containerCount + live.Count - 1) / live.Count;
        foreach (var owned in load.Values.Where(o => o.Count > most))
        {
            unassigned.AddRange(owned.Skip(most));
            owned.RemoveRange(most, owned.Count - most);
        }

        foreach (var id in unassigned.Order())
        {
            load.OrderBy(l => l.Value.Count).ThenBy(l => l.Key, StringComparer.Ordinal).First().Value.Add(id);
        }

        // Even out: move from the most to the least loaded store while they differ by more than one.
        while (true)
        {
            var heaviest = load.OrderByDescending(l => l.Value.Count).ThenBy(l => l.Key, StringComparer.Ordinal).First();
            var lightest = load.OrderBy(l => l.Value.Count).ThenBy(l => l.Key, StringComparer.Ordinal).First();
            if (heaviest.Value.Count - lightest.Value.Count <= 1)
            {
                break;
            }

            var moved = heaviest.Value[^1];
            heaviest.Value.RemoveAt(heaviest.Value.Count - 1);
            lightest.Value.Add(moved);
        }

        var owners = load.SelectMany(l => l.Value.Select(id => (id, l.Key))).ToDictionary(p => p.id, p => p.Key);
        var unchanged = owners.Count == current.Owners.Count && owners.All(o => current.Owners.TryGetValue(o.Key, out var was) && was == o.Value);
        return unchanged ? current : new ContainerAssignment(current.Generation + 1, owners);
    }
}
