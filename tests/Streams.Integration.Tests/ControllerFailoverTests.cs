using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Two controllers as real processes against one ZooKeeper; the leader is SIGKILLed while writers write, streams are
/// being created and a retention policy truncates a stream. The other controller leads within about a session
/// timeout, the client moves to it at once, and nothing the dead one acknowledged or was responsible for is lost:
/// every acknowledged creation exists, every acknowledged event reads back, retention keeps truncating, and the new
/// leader reassigns a dead segment store's containers (segment stores follow the assignment in ZooKeeper, whoever
/// writes it).
/// </summary>
public sealed partial class ControllerFailoverTests
{
    private const int Containers = 4;
    private const int SessionTimeoutMs = 2000;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task The_other_controller_takes_over_a_killed_leader_within_seconds_and_nothing_it_acknowledged_is_lost()
    {
        await using var cluster = await ClusterProcesses.StartAsync(
            bookies: 2, stores: 2, quorums: (2, 2, 2), containers: Containers, sessionTimeoutMs: SessionTimeoutMs,
            environment: new() { ["STREAMS__Controller__RetentionInterval"] = "00:00:00.200" }, controllers: 2);
        await cluster.RunAsync(RunAsync, TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
    }

    private static async Task RunAsync(ClusterProcesses cluster)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        var leader = await WaitForLeaderAsync(cluster, except: null);
        var survivor = 1 - leader;

        // The leader comes first in the client's list, so every controller call goes to it until it dies.
        await using var client = ProcessTestClients.ForFaults($"{cluster.Controllers[leader].ControllerUri},{cluster.Controllers[survivor].ControllerUri}");
        var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "failover", Containers);
        var load = AckedLoad.Start(writer, writers: 2, maxDuration: Bound * 2);
        await client.Streams.CreateStreamAsync("failover", "retained", StreamConfig.Fixed(2) with { Retention = RetentionPolicy.BySize(64 * 1024) });
        await using var retainedWriter = await client.CreateWriterAsync("failover", "retained", Serializers.Utf8);
        using var stop = new CancellationTokenSource(Bound * 2);
        var retained = Task.Run(() => WriteRetainedAsync(retainedWriter, stop.Token));
        var clock = Stopwatch.StartNew();
        var creations = new Creations();
        var creating = Task.Run(() => creations.RunAsync(client, clock, stop.Token));

        await WaitUntilAsync(() => load.Acknowledged >= 2_000 && creations.Acknowledged.Count >= 3 && FurthestTruncation(cluster.Controllers[leader].Output) > 0,
            () => $"No load before the kill: {load}; {creations}; the leader truncated up to {FurthestTruncation(cluster.Controllers[leader].Output)}");

        var atKill = clock.Elapsed;
        var acknowledgedAtKill = load.Acknowledged;
        var killedAtUtc = DateTime.UtcNow;
        cluster.Controllers[leader].Kill();

        Assert.Equal(survivor, await WaitForLeaderAsync(cluster, except: leader));
        var leading = clock.Elapsed - atKill;
        await WaitUntilAsync(() => creations.FirstAfter(atKill) is not null, () => $"No stream was created after the kill: {creations}");
        var created = creations.FirstAfter(atKill)!.Value - atKill;
        // Retention goes on where the dead leader left it: the new leader truncates further than it ever did.
        var truncatedByLeader = FurthestTruncation(cluster.Controllers[leader].Output);
        await WaitUntilAsync(() => FurthestTruncation(cluster.Controllers[survivor].Output) > truncatedByLeader,
            () => $"The new leader truncates no further than the dead one ({truncatedByLeader}).");
        var retaining = clock.Elapsed - atKill;
        await WaitUntilAsync(() => load.Acknowledged >= acknowledgedAtKill + 1_000, () => $"Writes stopped with the controller: {load}");
        await stop.CancelAsync();
        await creating;

        // The new leader keeps the containers assigned: a segment store dies, the other one gets its containers, and
        // writers find them through the surviving controller.
        var storeKilledAt = clock.Elapsed;
        cluster.SegmentStores[0].Kill();
        await cluster.WaitForContainersAsync(Containers, Bound, among: [cluster.SegmentStores[1]]);
        var reassigned = clock.Elapsed - storeKilledAt;
        var acknowledgedAtStoreKill = load.Acknowledged;
        await WaitUntilAsync(() => load.Acknowledged >= acknowledgedAtStoreKill + 1_000, () => $"Writes did not resume after the segment store died: {load}");
        await load.StopAsync(Bound);
        await writer.DisposeAsync();
        await retained;

        var streams = await client.Streams.ListStreamsAsync("failover");
        var lost = creations.Acknowledged.Keys.Where(s => !streams.Contains(s)).ToList();
        Assert.True(lost.Count == 0, $"Acknowledged streams missing after the takeover: {string.Join(", ", lost)}");
        foreach (var name in creations.Acknowledged.Keys)
        {
            Assert.Single((await client.Streams.DescribeStreamAsync("failover", name)).ActiveSegments);
        }

        await using var reader = StreamsClient.Create(cluster.Controllers[survivor].ControllerUri);
        var read = await AckedLoad.ReadAllAsync(reader, "failover", "events");
        load.Verify(read);

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"session timeout {SessionTimeoutMs} ms; {load}; read back {read.Count}; {creations}; leader killed at {killedAtUtc:HH:mm:ss.fff}Z, {atKill.TotalSeconds:F1} s into the test");
        output?.WriteLine("Creations around the kill (seconds from it): " + string.Join("; ", creations.Started.OrderBy(p => p.Value).Where(p => p.Value > atKill - TimeSpan.FromSeconds(0.3)).Take(3)
            .Select(p => $"{p.Key} started {Seconds(p.Value - atKill)}, acknowledged {(creations.Acknowledged.TryGetValue(p.Key, out var end) ? Seconds(end - atKill) : "never")}")));

        output?.WriteLine("| after the leader's SIGKILL | seconds |");
        output?.WriteLine("|---|---|");
        output?.WriteLine($"| the other controller leads | {Seconds(leading)} |");
        output?.WriteLine($"| first stream created (client failover) | {Seconds(created)} |");
        output?.WriteLine($"| first retention truncation by the new leader | {Seconds(retaining)} |");
        output?.WriteLine($"| containers of a then-killed segment store reassigned (from that kill) | {Seconds(reassigned)} |");
        Assert.True(leading < TimeSpan.FromMilliseconds(SessionTimeoutMs) + TimeSpan.FromSeconds(3), $"The takeover took {leading}.");
        Assert.True(created < FailoverGoal.Bound, $"The first creation after the kill took {created} (goal {FailoverGoal.Goal.TotalSeconds} s).");
    }

    [Fact]
    public async Task Clients_leave_a_frozen_leader_within_seconds_and_the_other_controller_takes_over()
    {
        // Production defaults: the controllers' 4 s sessions, the segment stores' own.
        await using var cluster = await ClusterProcesses.StartAsync(
            bookies: 3, stores: 2, quorums: (3, 3, 2), containers: Containers, sessionTimeoutMs: null, controllers: 2);
        await cluster.RunAsync(FrozenLeaderAsync, TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);
    }

    private static async Task FrozenLeaderAsync(ClusterProcesses cluster)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        var leader = await WaitForLeaderAsync(cluster, except: null);
        var survivor = 1 - leader;

        // The leader comes first in the client's list: every controller call goes to it until it freezes.
        await using var client = ProcessTestClients.ForFaults($"{cluster.Controllers[leader].ControllerUri},{cluster.Controllers[survivor].ControllerUri}");
        var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "frozenleader", Containers);
        var load = new KeyedLoad(writer);
        using var stop = new CancellationTokenSource(Bound * 4);
        var clock = Stopwatch.StartNew();
        var creations = new Creations("frozenleader");
        var creating = Task.Run(() => creations.RunAsync(client, clock, stop.Token));
        await WaitUntilAsync(() => load.Acknowledged >= 2_000 && creations.Acknowledged.Count >= 3, () => $"No load before the freeze: {load}; {creations}");

        var frozenAt = clock.Elapsed;
        var loadFrozenAt = load.Now;
        cluster.Controllers[leader].Suspend();
        Assert.Equal(survivor, await WaitForLeaderAsync(cluster, except: leader));
        var leading = clock.Elapsed - frozenAt;
        await WaitUntilAsync(() => creations.FirstAfter(frozenAt) is not null, () => $"No stream was created after the freeze: {creations}");
        var created = creations.FirstAfter(frozenAt)!.Value - frozenAt;
        var creationGap = creations.FirstAfter(frozenAt)!.Value - (creations.LastBefore(frozenAt) ?? frozenAt);
        Assert.True(await load.WaitForEveryKeyAsync(loadFrozenAt + TimeSpan.FromSeconds(1), 20, Bound), $"Writes stopped with the controller: {load}");
        var writeStall = load.LongestStall(loadFrozenAt);

        // A segment store that must be looked up again while the leader is frozen: its writers ask the survivor.
        var storeKilledAt = load.Now;
        cluster.SegmentStores[0].Kill();
        await cluster.WaitForContainersAsync(Containers, Bound, among: [cluster.SegmentStores[1]]);
        Assert.True(await load.WaitForEveryKeyAsync(load.Now, 20, Bound), $"Writes did not resume after the segment store died: {load}");
        var storeStall = load.LongestStall(storeKilledAt);

        // The frozen leader wakes up to an expired session: it leads no more.
        cluster.Controllers[leader].Resume();
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(survivor, await WaitForLeaderAsync(cluster, except: null));
        await stop.CancelAsync();
        await creating;
        await load.StopAsync(Bound);
        await writer.DisposeAsync();

        var streams = await client.Streams.ListStreamsAsync("frozenleader");
        var lost = creations.Acknowledged.Keys.Where(s => !streams.Contains(s)).ToList();
        Assert.True(lost.Count == 0, $"Acknowledged streams missing after the takeover: {string.Join(", ", lost)}");
        await using var reader = ProcessTestClients.ForFaults(cluster.Controllers[survivor].ControllerUri);
        load.Verify((await AckedLoad.ReadAllAsync(reader, "frozenleader", "events")).Select(r => r.Value).ToList());

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{load}; {creations}");
        output?.WriteLine("| after the leader's SIGSTOP (default sessions) | seconds |");
        output?.WriteLine("|---|---|");
        output?.WriteLine($"| the other controller leads | {Seconds(leading)} |");
        output?.WriteLine($"| first stream created after the freeze (client failover) | {Seconds(created)} |");
        output?.WriteLine($"| longest gap between two stream creations | {Seconds(creationGap)} |");
        output?.WriteLine($"| longest write stall of a key after the freeze | {Seconds(writeStall)} |");
        output?.WriteLine($"| longest write stall of a key after a segment store then died | {Seconds(storeStall)} |");
        // The call in flight on the frozen leader fails once its HTTP/2 keep-alive ping goes unanswered (1 s of silence,
        // then the 3 s keep-alive timeout, checked about once a second), then succeeds on the other controller at once;
        // a client that waited for its call's deadline on the frozen one instead never created a stream again. Measured
        // from the takeover, which itself waits for the frozen leader's session (4 s) and ZooKeeper's expiry tick (2 s).
        Assert.True(created < leading + FailoverGoal.Bound, $"The first creation after the leader froze took {Seconds(created)} s ({Seconds(leading)} s until the other controller led; goal: 4 s after it, a test fails at {FailoverGoal.Bound.TotalSeconds} s after it).");
        FailoverGoal.Check(writeStall, "while the leader was frozen");
        FailoverGoal.Check(storeStall, "after a segment store died while the leader was frozen");
    }

    /// <summary>Events of about 1 KiB into the retained stream until stopped, so that retention has bytes to drop.</summary>
    private static async Task WriteRetainedAsync(Client.Writing.EventStreamWriter<string> writer, CancellationToken cancellationToken)
    {
        var padding = new string('r', 1000);
        for (var i = 0; i < 1_000_000 && !cancellationToken.IsCancellationRequested; i++)
        {
            try
            {
                await writer.WriteEventAsync("k" + (i % 4).ToString(CultureInfo.InvariantCulture), padding).WaitAsync(cancellationToken);
                if (i % 16 == 0)
                {
                    await Task.Delay(5, cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (StreamsException)
            {
                // Not what this test checks; retention needs only some bytes.
            }
        }
    }

    private static async Task<int> WaitForLeaderAsync(ClusterProcesses cluster, int? except)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await cluster.LeadingControllerAsync() is { } index && index != except)
            {
                return index;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("No controller leads.");
    }

    private static Task WaitUntilAsync(Func<bool> condition, Func<string> what) =>
        Waiting.UntilAsync(condition, what, Bound, TimeSpan.FromMilliseconds(50));

    /// <summary>The largest segment offset of the retained stream that a controller's log says it truncated at.</summary>
    private static long FurthestTruncation(string output) =>
        TruncatedAt().Matches(output).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    [GeneratedRegex(@"failover/retained/\d+\.#epoch\.\d+@(\d+)")]
    private static partial Regex TruncatedAt();

    private static string Seconds(TimeSpan time) => time.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>Creates streams in <paramref name="scope"/> one after the other; records which were acknowledged, and when.</summary>
    private sealed class Creations(string scope = "failover")
    {
        public ConcurrentDictionary<string, TimeSpan> Acknowledged { get; } = new();

        public ConcurrentBag<string> Failures { get; } = [];

        public ConcurrentDictionary<string, TimeSpan> Started { get; } = new();

        public TimeSpan? FirstAfter(TimeSpan time)
        {
            var after = Acknowledged.Values.Where(t => t > time).ToList();
            return after.Count == 0 ? null : after.Min();
        }

        public TimeSpan? LastBefore(TimeSpan time)
        {
            var before = Acknowledged.Values.Where(t => t <= time).ToList();
            return before.Count == 0 ? null : before.Max();
        }

        public async Task RunAsync(StreamsClient client, Stopwatch clock, CancellationToken cancellationToken)
        {
            for (var i = 0; i < 10_000 && !cancellationToken.IsCancellationRequested; i++)
            {
                var name = "s" + i.ToString("D4", CultureInfo.InvariantCulture);
                Started[name] = clock.Elapsed;
                try
                {
                    await client.Streams.CreateStreamAsync(scope, name, StreamConfig.Fixed(1), cancellationToken);
                    Acknowledged[name] = clock.Elapsed;
                    await Task.Delay(50, cancellationToken); // a steady trickle, not a flood of metadata
                }
                catch (StreamsException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (StreamsException e)
                {
                    // The outcome is unknown; the stream need not exist.
                    Failures.Add($"{name} at {clock.Elapsed.TotalSeconds:F2} s: {e.StatusCode} {e.Message}");
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        public override string ToString() => $"{Acknowledged.Count} streams created, {Failures.Count} creations failed ({string.Join("; ", Failures)})";
    }
}
