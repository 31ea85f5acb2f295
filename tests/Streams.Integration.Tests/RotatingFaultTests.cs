using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A long run, not part of the suite (category Long, which the suite leaves out; STREAMS_LONG_FAULTS_MINUTES, default 5): a cluster
/// with every role's production defaults (3 bookies E3/Qw3/Qa2, 2 controllers, 2 segment stores), a writer with a
/// stable id writing one event at a time per routing key, and one fault after the other in rotation: SIGKILL and
/// SIGSTOP of a segment store, a bookie and the leading controller, each followed by its recovery (restart or
/// SIGCONT). Every fault's stall (the longest wait of any key for its next acknowledgement) is recorded; the run prints
/// max and median per fault kind, then reads everything back and requires nothing lost, duplicated or out of order.
/// </summary>
public sealed class RotatingFaultTests
{
    private const int Containers = 4;
    private const int Segments = 8;
    private const string Scope = "rotating";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>How long a frozen process stays frozen: longer than every session, so its work moves.</summary>
    private static readonly TimeSpan Frozen = TimeSpan.FromSeconds(7);

    [Fact]
    [Trait("Category", "Long")]
    public async Task Rotating_kills_and_freezes_of_every_role_lose_nothing_and_each_stall_is_reported()
    {
        var minutes = double.TryParse(Environment.GetEnvironmentVariable("STREAMS_LONG_FAULTS_MINUTES"), NumberStyles.Float, CultureInfo.InvariantCulture, out var m) ? m : 5;
        var duration = TimeSpan.FromMinutes(minutes);
        await using var cluster = await ClusterProcesses.StartAsync(
            bookies: 3, stores: 2, quorums: (3, 3, 2), containers: Containers, sessionTimeoutMs: null, controllers: 2);
        await cluster.RunAsync(c => RunAsync(c, duration), duration + TimeSpan.FromMinutes(5), TestContext.Current.CancellationToken);
    }

    private static async Task RunAsync(ClusterProcesses cluster, TimeSpan duration)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        await using var client = ProcessTestClients.ForFaults(cluster.ControllerUri);
        await client.Streams.CreateScopeAsync(Scope);
        await client.Streams.CreateStreamAsync(Scope, "events", StreamConfig.Fixed(Segments));
        var writer = await client.CreateWriterAsync(Scope, "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true, WriterId = Guid.NewGuid() });
        var load = new KeyedLoad(writer, maxDuration: duration + TimeSpan.FromMinutes(4));
        Assert.True(await load.WaitForAsync(1_000, Bound), $"No write load before the faults: {load}");

        var stalls = new Dictionary<string, List<TimeSpan>>(StringComparer.Ordinal);
        void Record(string kind, TimeSpan stall)
        {
            (stalls.TryGetValue(kind, out var list) ? list : stalls[kind] = []).Add(stall);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load.Now.TotalSeconds,7:F1} s  {kind,-28} stall {stall.TotalSeconds:F2} s ({load})");
        }

        async Task<TimeSpan> StallAsync(TimeSpan since)
        {
            Assert.True(await load.WaitForEveryKeyAsync(since, 5, Bound), $"Writes did not resume: {load}");
            return load.LongestStall(since);
        }

        var clock = Stopwatch.StartNew();
        for (var round = 0; round < 1_000 && clock.Elapsed < duration; round++)
        {
            await cluster.WaitForContainersAsync(Containers, Bound);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var at = load.Now;
            switch (round % 6)
            {
                case 0:
                {
                    var i = await BusiestStoreAsync(cluster);
                    cluster.SegmentStores[i].Kill();
                    Record("segment store SIGKILL", await StallAsync(at));
                    var back = load.Now;
                    await cluster.RestartSegmentStoreAsync(i);
                    await cluster.WaitForRunningAsync(cluster.SegmentStores[i], Containers / 2, Bound);
                    Record("segment store restart", await StallAsync(back));
                    break;
                }

                case 1:
                {
                    var i = round % 3;
                    cluster.KillBookie(i);
                    Record("bookie SIGKILL", await StallAsync(at));
                    var back = load.Now;
                    await cluster.RestartBookieAsync(i);
                    Record("bookie restart", await StallAsync(back));
                    break;
                }

                case 2:
                {
                    var leader = await LeaderAsync(cluster);
                    cluster.Controllers[leader].Kill();
                    Record("controller SIGKILL", await StallAsync(at));
                    await cluster.RestartControllerAsync(leader);
                    break;
                }

                case 3:
                {
                    var i = await BusiestStoreAsync(cluster);
                    var store = cluster.SegmentStores[i];
                    store.Suspend();
                    Record("segment store SIGSTOP", await StallAsync(at));
                    await HoldAsync(at);
                    var woken = load.Now;
                    store.Resume();
                    await cluster.WaitForRunningAsync(store, Containers / 2, Bound);
                    Record("segment store SIGCONT", await StallAsync(woken));
                    break;
                }

                case 4:
                {
                    var bookie = cluster.Bookies[round % 3];
                    bookie.Suspend();
                    await HoldAsync(at);
                    Record("bookie SIGSTOP", await StallAsync(at));
                    var woken = load.Now;
                    bookie.Resume();
                    Record("bookie SIGCONT", await StallAsync(woken));
                    break;
                }

                default:
                {
                    var controller = cluster.Controllers[await LeaderAsync(cluster)];
                    controller.Suspend();
                    await HoldAsync(at);
                    Record("controller SIGSTOP", await StallAsync(at));
                    controller.Resume();
                    break;
                }
            }

            async Task HoldAsync(TimeSpan since)
            {
                var left = Frozen - (load.Now - since);
                if (left > TimeSpan.Zero)
                {
                    await Task.Delay(left);
                }
            }
        }

        await cluster.WaitForContainersAsync(Containers, Bound);
        await load.StopAsync(Bound);
        await writer.DisposeAsync();
        await using var reader = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var read = (await AckedLoad.ReadAllAsync(reader, Scope, "events")).Select(r => r.Value).ToList();
        var (lost, duplicated, outOfOrder, foreign) = load.Check(read);

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{clock.Elapsed.TotalMinutes:F1} min, {load}, read back {read.Count}: lost {lost}, duplicated {duplicated}, out of order {outOfOrder}, never written {foreign}");
        output?.WriteLine("| fault | count | max stall (s) | p50 stall (s) |");
        output?.WriteLine("|---|---|---|---|");
        foreach (var (kind, list) in stalls.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var sorted = list.Order().ToList();
            output?.WriteLine($"| {kind} | {sorted.Count} | {sorted[^1].TotalSeconds:F2} | {sorted[(sorted.Count - 1) / 2].TotalSeconds:F2} |");
        }

        Assert.Equal((0, 0, 0, 0), (lost, duplicated, outOfOrder, foreign));
    }

    private static async Task<int> BusiestStoreAsync(ClusterProcesses cluster)
    {
        var best = (Index: 0, Running: -1);
        for (var i = 0; i < cluster.SegmentStores.Count; i++)
        {
            var running = await ClusterProcesses.RunningContainersAsync(cluster.SegmentStores[i]) ?? 0;
            best = running > best.Running ? (i, running) : best;
        }

        return best.Index;
    }

    private static async Task<int> LeaderAsync(ClusterProcesses cluster)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await cluster.LeadingControllerAsync() is { } leader)
            {
                return leader;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("No controller leads.");
    }
}
