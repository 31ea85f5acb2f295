using FsCheck;
using FsCheck.Fluent;
using Streams.Coordination.Cluster;
using Streams.Controller.Cluster;

namespace Streams.Controller.Tests.Cluster;

/// <summary>The pure balancing rule: every container on a live store, loads within one, and as few moves as that allows.</summary>
public sealed class ContainerBalancerTests
{
    [Fact]
    public void A_fresh_cluster_spreads_containers_evenly()
    {
        var next = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a", "b", "c"], 8);

        Assert.Equal(1, next.Generation);
        Assert.Equal(8, next.Owners.Count);
        Assert.Equal([3, 3, 2], next.Owners.GroupBy(o => o.Value).Select(g => g.Count()).OrderDescending());
    }

    [Fact]
    public void A_dead_stores_containers_move_and_nothing_else_does()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a", "b", "c"], 9);

        var next = ContainerBalancer.Balance(current, ["a", "c"], 9);

        Assert.Equal(current.Generation + 1, next.Generation);
        Assert.DoesNotContain("b", next.Owners.Values);
        foreach (var (id, owner) in current.Owners.Where(o => o.Value != "b"))
        {
            Assert.Equal(owner, next.Owners[id]);
        }
    }

    [Fact]
    public void A_joining_store_takes_a_fair_share()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a"], 8);

        var next = ContainerBalancer.Balance(current, ["a", "b"], 8);

        Assert.Equal(4, next.Owners.Values.Count(o => o == "b"));
        Assert.Equal(4, next.Owners.Values.Count(o => o == "a"));
    }

    [Fact]
    public void A_balanced_assignment_is_returned_unchanged()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a", "b"], 5);

        Assert.Same(current, ContainerBalancer.Balance(current, ["b", "a"], 5));
    }

    [Fact]
    public void With_no_live_store_the_assignment_stays()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a", "b"], 4);

        Assert.Same(current, ContainerBalancer.Balance(current, [], 4));
    }

    [Fact]
    public void Any_assignment_and_membership_balance_into_a_complete_even_assignment_with_minimal_moves() =>
        Prop.ForAll<byte, byte[], byte>((containersSeed, ownerSeeds, liveSeed) =>
        {
            var containers = 1 + (containersSeed % 32);
            var stores = Enumerable.Range(0, 6).Select(i => $"store-{i}").ToArray();
            var owners = new Dictionary<int, string>();
            for (var id = 0; id < containers && ownerSeeds is not null && id < ownerSeeds.Length; id++)
            {
                if (ownerSeeds[id] % 7 != 6)
                {
                    owners[id] = stores[ownerSeeds[id] % 7 % stores.Length];
                }
            }

            var live = stores.Where((_, i) => (liveSeed & (1 << i)) != 0).ToList();
            if (live.Count == 0)
            {
                live.Add(stores[0]);
            }

            var current = new ContainerAssignment(7, owners);
            var next = ContainerBalancer.Balance(current, live, containers);

            var loads = live.Select(s => next.Owners.Values.Count(o => o == s)).ToList();
            var complete = Enumerable.Range(0, containers).All(id => next.Owners.TryGetValue(id, out var o) && live.Contains(o));
            var even = loads.Max() - loads.Min() <= 1;

            // Minimal: a container only moves if its owner is dead or its owner holds more than the fair ceiling.
            var ceiling = (containers + live.Count - 1) / live.Count;
            var keptLoads = live.ToDictionary(s => s, s => Math.Min(ceiling, owners.Count(o => o.Value == s && o.Key < containers)));
            var stayed = next.Owners.Count(o => owners.TryGetValue(o.Key, out var was) && was == o.Value);
            var minimal = stayed >= keptLoads.Values.Sum() - live.Count;
            return complete && even && minimal && (next.Generation == 7 || next.Generation == 8);
        }).QuickCheckThrowOnFailure();

    // ---- Step: one move at a time between live stores ----

    [Fact]
    public void A_rejoining_store_gets_one_container_at_a_time_each_once_the_previous_is_served()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a"], 4);
        var serving = Served(current);

        var first = ContainerBalancer.Step(current, ["a", "b"], serving, 4);
        Assert.Equal(1, Moved(current, first));
        Assert.Single(first.OwnedBy("b"));

        // Not served yet by b: nothing else moves.
        Assert.Same(first, ContainerBalancer.Step(first, ["a", "b"], serving, 4));

        var second = ContainerBalancer.Step(first, ["a", "b"], Served(first), 4);
        Assert.Equal(1, Moved(first, second));
        Assert.Equal(2, second.OwnedBy("b").Count());
        Assert.Same(second, ContainerBalancer.Step(second, ["a", "b"], Served(second), 4));
    }

    [Fact]
    public void A_dead_stores_containers_all_move_at_once_even_while_others_recover()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a", "b"], 8);

        var next = ContainerBalancer.Step(current, ["a"], new Dictionary<string, IReadOnlySet<int>>(), 8);

        Assert.Equal(8, next.OwnedBy("a").Count());
    }

    [Fact]
    public void Nothing_moves_while_a_container_is_not_served_by_its_owner()
    {
        var current = ContainerBalancer.Balance(ContainerAssignment.Empty, ["a"], 4);
        var recovering = new Dictionary<string, IReadOnlySet<int>> { ["a"] = new HashSet<int> { 0, 1, 2 } };

        Assert.Same(current, ContainerBalancer.Step(current, ["a", "b"], recovering, 4));
    }

    [Fact]
    public void Steps_with_every_move_served_reach_the_balanced_assignment_one_container_at_a_time() =>
        Prop.ForAll<byte, byte>((containersSeed, storesSeed) =>
        {
            var containers = 1 + (containersSeed % 32);
            var stores = Enumerable.Range(0, 1 + (storesSeed % 5)).Select(i => $"store-{i}").ToList();
            var current = ContainerBalancer.Balance(ContainerAssignment.Empty, stores.Take(1).ToList(), containers);
            for (var step = 0; step <= containers; step++)
            {
                var next = ContainerBalancer.Step(current, stores, Served(current), containers);
                if (ReferenceEquals(next, current))
                {
                    return ReferenceEquals(ContainerBalancer.Balance(current, stores, containers), current);
                }

                if (Moved(current, next) != 1)
                {
                    return false;
                }

                current = next;
            }

            return false;
        }).QuickCheckThrowOnFailure();

    private static Dictionary<string, IReadOnlySet<int>> Served(ContainerAssignment assignment) =>
        assignment.Owners.GroupBy(o => o.Value).ToDictionary(g => g.Key, g => (IReadOnlySet<int>)g.Select(o => o.Key).ToHashSet());

    private static int Moved(ContainerAssignment from, ContainerAssignment to) =>
        to.Owners.Count(o => !from.Owners.TryGetValue(o.Key, out var was) || was != o.Value);
}
