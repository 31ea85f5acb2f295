using System.Globalization;
using Google.Protobuf;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Contracts.SegmentStore;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A segment store frozen with SIGSTOP under load, in a cluster running every role's production defaults (ZooKeeper
/// sessions, client keep-alives): 3 bookies (E3/Qw3/Qa2), 2 controllers, 2 segment stores, one writer with a stable
/// id. Writes resume on the other store within 5 s (its session expires, the controller reassigns, the new owner
/// fences and recovers, the writer finds it); when the frozen store wakes up it serves nothing it lost (its appends are
/// refused), rejoins, takes half the containers back, and that costs the writers little. Both stalls are printed.
/// </summary>
public sealed class SegmentStoreFreezeTests
{
    private const int Containers = 4;
    private const string Scope = "frozenstore";

    /// <summary>More segments than containers, so that the frozen store surely serves some of them.</summary>
    private const int Segments = 8;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_frozen_segment_store_stalls_writes_for_seconds_and_serves_nothing_when_it_wakes()
    {
        await using var cluster = await ClusterProcesses.StartAsync(
            bookies: 3, stores: 2, quorums: (3, 3, 2), containers: Containers, sessionTimeoutMs: null, controllers: 2);
        await cluster.RunAsync(RunAsync, TimeSpan.FromMinutes(4), TestContext.Current.CancellationToken);
    }

    private static async Task RunAsync(ClusterProcesses cluster)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        await using var client = ProcessTestClients.ForFaults(cluster.ControllerUri);
        await client.Streams.CreateScopeAsync(Scope);
        await client.Streams.CreateStreamAsync(Scope, "events", StreamConfig.Fixed(Segments));
        var writer = await client.CreateWriterAsync(Scope, "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true, WriterId = Guid.NewGuid() });
        var load = new KeyedLoad(writer);
        Assert.True(await load.WaitForAsync(2_000, Bound), $"No write load before the fault: {load}");

        // The victim is the store that owns the most containers; a raw session on it holds append set-ups for every
        // segment it serves, to send appends that reach it only when it wakes.
        var (victimIndex, running) = await cluster.BusiestSegmentStoreAsync();
        var victim = cluster.SegmentStores[victimIndex];
        var survivor = cluster.SegmentStores[1 - victimIndex];
        using var zombie = await RawProtocolClient.ConnectAsync(victim.DataPort);
        var setUp = await SetUpEverySegmentAsync(zombie);
        Assert.NotEmpty(setUp);

        var frozenAt = load.Now;
        var outputAtFreeze = victim.Output.Length;
        victim.Suspend();
        await cluster.WaitForContainersAsync(Containers, Bound, among: [survivor]);
        var takenOver = load.Now - frozenAt;
        Assert.True(await load.WaitForEveryKeyAsync(frozenAt, 20, Bound), $"Writes did not resume on the other store: {load}");
        var freezeStall = load.LongestStall(frozenAt);

        // Appends the frozen store finds in its socket on waking, after another store took its containers over.
        const int ZombieBlocks = 8;
        foreach (var requestId in setUp)
        {
            for (var i = 0; i < ZombieBlocks; i++)
            {
                await zombie.SendAsync(new DataRequest
                {
                    Block = new AppendBlock { RequestId = requestId, LastEventNumber = i, EventCount = 1, Data = ByteString.CopyFrom(RawProtocolClient.Event($"zombie-{requestId}-{i}")) },
                });
            }
        }

        var wokenAt = load.Now;
        victim.Resume();
        var zombieReplies = new List<DataReply?>();
        for (var i = 0; i < setUp.Count * ZombieBlocks; i++)
        {
            var reply = await zombie.ReceiveAsync();
            zombieReplies.Add(reply);
            if (reply is null)
            {
                break;
            }
        }

        // It rejoins with a new session and gets its share back, one container at a time.
        await cluster.WaitForRunningAsync(victim, Containers / 2, Bound);
        await cluster.WaitForContainersAsync(Containers, Bound);
        var rebalanced = load.Now - wokenAt;
        Assert.True(await load.WaitForEveryKeyAsync(load.Now, 20, Bound), $"Writes did not continue after the woken store rejoined: {load}");
        var wakeStall = load.LongestStall(wokenAt);
        await load.StopAsync(Bound);
        await writer.DisposeAsync();

        await using var reader = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var read = (await AckedLoad.ReadAllAsync(reader, Scope, "events")).Select(r => r.Value).ToList();
        Assert.DoesNotContain(read, v => v.StartsWith("zombie-", StringComparison.Ordinal));
        load.Verify(read);

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{load}; read back {read.Count}; the frozen store ran {running[victimIndex]} of {Containers} containers");
        output?.WriteLine("Woken store's replies to appends sent while it was frozen: " + string.Join(" | ", zombieReplies.Select(r => r?.KindCase.ToString() ?? "closed").Distinct()));
        output?.WriteLine("| segment store SIGSTOP, default settings | seconds |");
        output?.WriteLine("|---|---|");
        output?.WriteLine($"| every container served by the other store | {Seconds(takenOver)} |");
        output?.WriteLine($"| longest write stall of a key after the freeze | {Seconds(freezeStall)} |");
        output?.WriteLine($"| woken store serves its share again (from SIGCONT) | {Seconds(rebalanced)} |");
        output?.WriteLine($"| longest write stall of a key after the wake-up | {Seconds(wakeStall)} |");

        Assert.DoesNotContain(zombieReplies, r => r?.KindCase == DataReply.KindOneofCase.Appended);
        Assert.Contains("stopping every container", victim.Output[outputAtFreeze..], StringComparison.Ordinal);
        // A frozen store still holds its ports: the controller's probe must leave it to the session timeout (4 s).
        Assert.True(takenOver > TimeSpan.FromSeconds(2), $"The frozen store's containers moved {Seconds(takenOver)} s after the freeze, before its session could expire.");
        FailoverGoal.Check(freezeStall, "after a segment store froze");
        FailoverGoal.Check(wakeStall, "after the frozen segment store woke up");
    }

    /// <summary>Sets up appends on every segment of the stream; returns the request ids the store accepted.</summary>
    private static async Task<List<long>> SetUpEverySegmentAsync(RawProtocolClient raw)
    {
        var writerId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray());
        for (var n = 0; n < Segments; n++)
        {
            await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = n + 1, WriterId = writerId, Segment = $"{Scope}/events/{n.ToString(CultureInfo.InvariantCulture)}.#epoch.0" } });
        }

        var accepted = new List<long>();
        foreach (var reply in await raw.ReceiveAsync(Segments))
        {
            if (reply.KindCase == DataReply.KindOneofCase.Setup)
            {
                accepted.Add(reply.Setup.RequestId);
            }
        }

        return accepted;
    }

    private static string Seconds(TimeSpan time) => time.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture);
}
