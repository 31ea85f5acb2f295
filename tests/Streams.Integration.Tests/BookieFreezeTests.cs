using Streams.Client;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Bookie faults under a write load in a real cluster (3 bookies, E3/Qw3/Qa2, default ledger deadlines): a frozen
/// bookie costs at most one add deadline, and a bookie that died and came back is written to again, so a second
/// failure later does not stop writes. Each test prints the longest stall it saw after its fault.
/// </summary>
public sealed class BookieFreezeTests
{
    private const int Containers = 4;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>How long after a fault the stall is measured: the fault's whole effect, a few deadlines.</summary>
    private static readonly TimeSpan StallWindow = TimeSpan.FromSeconds(8);

    /// <summary>Ledger:AddTimeout's default, the most a frozen bookie may hold an entry back.</summary>
    private static readonly TimeSpan AddTimeout = TimeSpan.FromSeconds(2);

    [Fact]
    public Task A_bookie_frozen_under_load_holds_writes_back_no_longer_than_the_add_deadline() =>
        WithClusterAsync(async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "frozenbookie", Containers);
            var load = AckedLoad.Start(writer, maxDuration: Bound);
            Assert.True(await load.WaitForAcknowledgedAsync(3_000, Bound), $"No write load before the fault: {load}");

            var stall = MeasureStall(load);
            cluster.Bookies[1].Suspend();
            var atFreeze = load.Acknowledged;
            Assert.True(await load.WaitForAcknowledgedAsync(atFreeze + 3_000, Bound), $"Writes stopped while one of three bookies was frozen: {load}");
            var longest = await stall.WaitAsync(StallWindow + TimeSpan.FromSeconds(10));
            await load.StopAsync(Bound);
            await writer.DisposeAsync();

            cluster.Bookies[1].Resume();
            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "frozenbookie", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; longest stall after the freeze {longest.TotalSeconds:F2} s; read back {read.Count}");
            Assert.True(longest < AddTimeout * 2, $"Writes stalled {longest.TotalSeconds:F2} s after a bookie froze (add deadline {AddTimeout.TotalSeconds} s).");
        });

    [Fact]
    public Task A_bookie_that_died_and_came_back_keeps_writes_going_when_another_dies() =>
        // Ledgers that outlive both faults: the writers that lost the first bookie are the ones the second kill tests.
        WithClusterAsync(environment: new() { ["STREAMS__SegmentStore__LedgerRolloverSize"] = "256MiB" }, test: async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "rejoin", Containers);
            var load = AckedLoad.Start(writer, maxDuration: Bound);
            Assert.True(await load.WaitForAcknowledgedAsync(3_000, Bound), $"No write load before the fault: {load}");

            cluster.KillBookie(1);
            Assert.True(await load.WaitForAcknowledgedAsync(load.Acknowledged + 2_000, Bound), $"Writes stopped after the first bookie died: {load}");
            await cluster.RestartBookieAsync(1);

            // Long enough for every writer's retry delay (1 s) to pass and the bookie to take entries again.
            Assert.True(await load.WaitForAcknowledgedAsync(load.Acknowledged + 3_000, Bound), $"Writes stopped after the bookie came back: {load}");
            await Task.Delay(TimeSpan.FromSeconds(2));

            var stall = MeasureStall(load);
            cluster.KillBookie(2);
            var atKill = load.Acknowledged;
            Assert.True(await load.WaitForAcknowledgedAsync(atKill + 3_000, Bound), $"Writes stopped after the second bookie died: {load}");
            var longest = await stall.WaitAsync(StallWindow + TimeSpan.FromSeconds(10));
            await load.StopAsync(Bound);
            await writer.DisposeAsync();

            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "rejoin", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; longest stall after the second kill {longest.TotalSeconds:F2} s; read back {read.Count}");
            Assert.True(load.Failed == 0, $"Writes failed: {load}");
            // The bookie that came back takes the second one's place at once: no deadline has to pass (a writer that
            // kept it out stalled 2-4 s here, then rolled its ledgers over).
            Assert.True(longest < AddTimeout, $"Writes stalled {longest.TotalSeconds:F2} s after the second bookie died.");
        });

    private static async Task WithClusterAsync(Func<ClusterProcesses, Task> test, Dictionary<string, string>? environment = null)
    {
        await using var cluster = await ClusterProcesses.StartAsync(3, 1, quorums: (3, 3, 2), containers: Containers, environment: environment);
        await cluster.RunAsync(async c =>
        {
            await c.WaitForContainersAsync(Containers, Bound);
            await test(c);
        }, TimeSpan.FromMinutes(3) + Bound);
    }

    private static StreamsClient Client(ClusterProcesses cluster) =>
        ProcessTestClients.ForFaults(cluster.ControllerUri);

    /// <summary>The longest time the load went without an acknowledgement, sampled over <see cref="StallWindow"/>.</summary>
    private static Task<TimeSpan> MeasureStall(AckedLoad load) => StallMeter.SampleAsync(() => load.Acknowledged, StallWindow);
}
