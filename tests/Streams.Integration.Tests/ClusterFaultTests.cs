using Google.Protobuf;
using Streams.Client;
using Streams.Client.Writing;
using Streams.Contracts.SegmentStore;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Faults in a real cluster: ZooKeeper, bookies, a controller and segment stores as separate processes on loopback,
/// killed with SIGKILL or frozen with SIGSTOP while writers are busy. Whatever happens, every acknowledged event is
/// readable afterwards, exactly once, in per-key order.
/// </summary>
public sealed class ClusterFaultTests
{
    private const int Containers = 4;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public Task Writes_continue_when_a_bookie_dies_and_every_acknowledged_event_is_on_the_others() =>
        WithClusterAsync(bookies: 3, async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await CreateStreamAndWriterAsync(client, "bookiefault");
            var load = AckedLoad.Start(writer, maxDuration: Bound);
            Assert.True(await load.WaitForAcknowledgedAsync(5_000, Bound), $"No write load before the fault: {load}");

            cluster.KillBookie(1);
            var atKill = load.Acknowledged;
            Assert.True(await load.WaitForAcknowledgedAsync(atKill + 10_000, Bound), $"Writes stopped after one of three bookies died: {load}");
            await load.StopAsync(Bound);
            await writer.DisposeAsync();
            Assert.True(load.Failed == 0, $"Writes failed: {load}");

            // The segment store restarts too, so its containers recover from the two remaining bookies alone.
            await cluster.RestartSegmentStoreAsync(0);
            await cluster.WaitForContainersAsync(Containers, Bound);
            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "bookiefault", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; {load.Acknowledged - atKill} acknowledged after the kill; read back {read.Count}");
        });

    [Fact]
    public Task A_segment_store_killed_under_load_restarts_with_every_acknowledged_event_and_no_duplicates() =>
        WithClusterAsync(bookies: 3, async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await CreateStreamAndWriterAsync(client, "storefault");
            var load = AckedLoad.Start(writer, maxDuration: Bound * 2);
            Assert.True(await load.WaitForAcknowledgedAsync(5_000, Bound), $"No write load before the fault: {load}");

            cluster.SegmentStores[0].Kill();
            var atKill = load.Acknowledged;
            await cluster.RestartSegmentStoreAsync(0);
            await cluster.WaitForContainersAsync(Containers, Bound);

            // The writer reconnects and resends what was not acknowledged; deduplication keeps it exactly once.
            Assert.True(await load.WaitForAcknowledgedAsync(atKill + 5_000, Bound), $"Writes did not resume after the restart: {load}");
            await load.StopAsync(Bound);
            await writer.DisposeAsync();

            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "storefault", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; read back {read.Count}");
        });

    [Fact]
    public Task A_frozen_owner_that_wakes_up_after_takeover_can_append_nothing() =>
        WithClusterAsync(bookies: 3, async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await CreateStreamAndWriterAsync(client, "zombie");
            for (var i = 0; i < 100; i++)
            {
                await writer.WriteEventAsync("k", $"before-{i}");
            }

            // The zombie-to-be accepts an append session while it still owns every container.
            var zombie = cluster.SegmentStores[0];
            using var raw = await RawProtocolClient.ConnectAsync(zombie.DataPort);
            const string Segment = "zombie/events/0.#epoch.0";
            await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 1, WriterId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Segment = Segment } });
            Assert.Equal(DataReply.KindOneofCase.Setup, (await raw.ReceiveAsync())!.KindCase);

            // Frozen: its session expires and a new store takes every container, fencing the zombie's ledgers.
            zombie.Suspend();
            var successor = await cluster.AddSegmentStoreAsync();
            await cluster.WaitForContainersAsync(Containers, Bound, among: [successor]);
            for (var i = 0; i < 100; i++)
            {
                await writer.WriteEventAsync("k", $"after-{i}");
            }

            // Appends queue in the zombie's socket and are the first thing it handles on waking.
            const int ZombieBlocks = 20;
            for (var i = 0; i < ZombieBlocks; i++)
            {
                await raw.SendAsync(new DataRequest
                {
                    Block = new AppendBlock { RequestId = 1, LastEventNumber = i, EventCount = 1, Data = ByteString.CopyFrom(RawProtocolClient.Event($"zombie-{i}")) },
                });
            }

            zombie.Resume();
            var replies = new List<DataReply?>();
            for (var i = 0; i < ZombieBlocks; i++)
            {
                var reply = await raw.ReceiveAsync();
                replies.Add(reply);
                if (reply is null)
                {
                    break;
                }
            }

            TestContext.Current.TestOutputHelper?.WriteLine("Zombie replies: " + string.Join(" | ", replies.Select(r => r?.ToString() ?? "closed").Distinct()));
            Assert.DoesNotContain(replies, r => r?.KindCase == DataReply.KindOneofCase.Appended);
            Assert.Contains(replies, r => r?.KindCase == DataReply.KindOneofCase.Rejected && r.Rejected.Error == AppendError.Retry);

            await writer.DisposeAsync();
            await using var reader = Client(cluster);
            var read = (await AckedLoad.ReadAllAsync(reader, "zombie", "events")).Select(r => r.Value).ToList();
            Assert.DoesNotContain(read, v => v.StartsWith("zombie-", StringComparison.Ordinal));
            Assert.Equal(Enumerable.Range(0, 100).Select(i => $"before-{i}").Concat(Enumerable.Range(0, 100).Select(i => $"after-{i}")), read);
        });

    [Fact]
    public Task A_new_owner_serves_data_its_predecessor_moved_to_tier2_and_truncated_from_the_log() =>
        WithClusterAsync(bookies: 3, async cluster =>
        {
            await using var client = Client(cluster);
            var writer = await CreateStreamAndWriterAsync(client, "tier2failover");
            var load = AckedLoad.Start(writer, maxDuration: Bound * 2, padding: 2048);
            Assert.True(await load.WaitForAcknowledgedAsync(8_000, Bound), $"No write load before the fault: {load}"); // ~16 MiB
            var moved = 0L;
            for (var i = 0; i < 300 && (moved = DirectorySize.Of(cluster.Tier2Directory)) < 8L << 20; i++)
            {
                await Task.Delay(100);
            }

            Assert.True(moved >= 8L << 20, $"Only {moved} bytes reached Tier 2 under load ({load}).");

            // The owner dies; a new segment store takes every container over: it recovers each log from its last
            // checkpoint and reads what came before from the chunks its predecessor wrote.
            cluster.SegmentStores[0].Kill();
            var successor = await cluster.AddSegmentStoreAsync();
            await cluster.WaitForContainersAsync(Containers, Bound, among: [successor]);
            var atKill = load.Acknowledged;
            Assert.True(await load.WaitForAcknowledgedAsync(atKill + 2_000, Bound), $"Writes did not resume on the new owner: {load}");
            await load.StopAsync(Bound);
            await writer.DisposeAsync();

            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "tier2failover", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; {moved >> 20} MiB in Tier 2 before the kill; read back {read.Count}");
        });

    [Fact]
    public Task An_owner_partitioned_from_zookeeper_while_it_sweeps_tier2_deletes_nothing_and_every_acked_byte_reads_back() =>
        WithClusterAsync(bookies: 3, stores: 0, environment: new() { ["STREAMS__SegmentStore__Tier2OrphanSweepInterval"] = "00:00:00.100" }, test: async cluster =>
        {
            // The owner reaches ZooKeeper through a proxy (the bookies directly): cutting it is a partition from
            // coordination while the owner keeps running, its storage writer sweeping Tier 2 ten times a second.
            await using var partition = new TcpProxy(cluster.ZooKeeper.Port);
            var owner = await cluster.AddSegmentStoreAsync($"127.0.0.1:{partition.Port}");
            await cluster.WaitForContainersAsync(Containers, Bound);
            await using var client = Client(cluster);
            var writer = await CreateStreamAndWriterAsync(client, "partition");
            var load = AckedLoad.Start(writer, maxDuration: Bound * 2, padding: 2048);
            Assert.True(await load.WaitForAcknowledgedAsync(4_000, Bound), $"No write load before the fault: {load}");
            for (var i = 0; i < 300 && DirectorySize.Of(cluster.Tier2Directory) < 4L << 20; i++)
            {
                await Task.Delay(100);
            }

            var outputAtCut = owner.Output.Length;
            partition.Block();
            var successor = await cluster.AddSegmentStoreAsync();
            await cluster.WaitForContainersAsync(Containers, Bound, among: [successor]);
            var atTakeover = load.Acknowledged;
            // The new owner writes chunks of its own epoch and truncates its logs while the old one is still cut off.
            Assert.True(await load.WaitForAcknowledgedAsync(atTakeover + 4_000, Bound), $"Writes did not resume on the new owner: {load}");
            await load.StopAsync(Bound);
            await writer.DisposeAsync();

            var afterCut = owner.Output[outputAtCut..];
            Assert.DoesNotContain("unreferenced chunks from Tier 2", afterCut, StringComparison.Ordinal);
            Assert.Contains("stopping every container", afterCut, StringComparison.Ordinal);

            // A third owner recovers from checkpoints and reads everything before them from Tier 2: nothing was lost.
            successor.Kill();
            var third = await cluster.AddSegmentStoreAsync();
            await cluster.WaitForContainersAsync(Containers, Bound, among: [third]);
            await using var reader = Client(cluster);
            var read = await AckedLoad.ReadAllAsync(reader, "partition", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; {atTakeover} acknowledged before the takeover; read back {read.Count}");
        });

    private static async Task WithClusterAsync(int bookies, Func<ClusterProcesses, Task> test, int stores = 1, Dictionary<string, string>? environment = null)
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies, stores, quorums: (3, 3, 2), containers: Containers, environment: environment);
        await cluster.RunAsync(async c =>
        {
            if (stores > 0)
            {
                await c.WaitForContainersAsync(Containers, Bound);
            }

            await test(c);
        }, TimeSpan.FromMinutes(4) + Bound);
    }

    private static Task<EventStreamWriter<string>> CreateStreamAndWriterAsync(StreamsClient client, string scope) =>
        ProcessTestClients.CreateStreamAndWriterAsync(client, scope, Containers);

    private static StreamsClient Client(ClusterProcesses cluster) =>
        ProcessTestClients.ForFaults(cluster.ControllerUri);
}
