using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A segment store that rejoins a cluster gets its share of containers back, and that costs the writers no more than
/// one container recovery at a time: the controller moves one container, waits until its new owner serves it, then
/// moves the next. Real processes (ZooKeeper, three bookies, a controller, two segment stores); the stall is the
/// longest wait of any routing key for its next acknowledgement, measured and printed for the failover and the rejoin.
/// </summary>
public sealed class RebalanceTests
{
    private const int Containers = 4;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_rejoining_segment_store_takes_containers_back_with_writes_stalling_at_most_one_recovery()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 2, quorums: (3, 3, 2), containers: Containers);
        await cluster.RunAsync(RunAsync, TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);
    }

    private static async Task RunAsync(ClusterProcesses cluster)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        await using var client = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "rejoin", Containers);
        var load = new KeyedLoad(writer);
        Assert.True(await load.WaitForAsync(2_000, Bound), $"No write load: {load}");

        // One store dies: its containers fail over to the other.
        var killedAt = load.Now;
        cluster.SegmentStores[1].Kill();
        await cluster.WaitForContainersAsync(Containers, Bound, among: [cluster.SegmentStores[0]]);
        Assert.True(await load.WaitForAsync(load.Acknowledged + 2_000, Bound), $"Writes did not resume after the failover: {load}");
        var failover = load.LongestStall(killedAt);

        // It comes back: it gets half the containers again.
        var rejoinedAt = load.Now;
        var rejoined = await cluster.RestartSegmentStoreAsync(1);
        await cluster.WaitForRunningAsync(rejoined, Containers / 2, Bound);
        await cluster.WaitForContainersAsync(Containers, Bound);
        var settled = load.Acknowledged;
        Assert.True(await load.WaitForAsync(settled + 2_000, Bound), $"Writes did not continue after the rejoin: {load}");
        var rejoin = load.LongestStall(rejoinedAt);
        await load.StopAsync(Bound);
        await writer.DisposeAsync();

        await using var reader = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var read = (await AckedLoad.ReadAllAsync(reader, "rejoin", "events")).Select(r => r.Value).ToList();
        load.Verify(read);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"longest stall of a key: failover {failover.TotalSeconds:F2} s, rejoin {rejoin.TotalSeconds:F2} s ({load}, read back {read.Count})");

        // One recovery at a time: a container's move stalls only its own keys, for about one recovery.
        FailoverGoal.Check(rejoin, "while containers moved back to the rejoining store");
    }
}
