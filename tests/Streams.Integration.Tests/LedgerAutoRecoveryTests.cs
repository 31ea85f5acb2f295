using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Coordination.Metadata;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Ledger auto-recovery on real processes: a bookie is killed for good while a segment store writes (1 MiB ledgers,
/// truncated behind Tier 2), a new bookie joins, and every closed ledger gets its lost copies back on live bookies —
/// checked by reading every entry from every bookie of its write set directly — while the under-replicated gauge
/// goes back to zero.
/// </summary>
public sealed class LedgerAutoRecoveryTests
{
    private const int Containers = 4;
    private const int OwnLedgers = 4;
    private const int EntriesPerLedger = 100;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(40);
    private const string Gauge = "streams_ledger_recovery_underreplicated_ledgers";

    [Fact]
    public async Task After_a_bookie_is_lost_for_good_every_closed_ledger_returns_to_its_write_quorum_on_live_bookies()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 1, quorums: (3, 3, 2), containers: Containers, environment: new()
        {
            ["STREAMS__AutoRecovery__LostBookieGracePeriod"] = "00:00:02",
            ["STREAMS__AutoRecovery__CheckInterval"] = "00:00:05",
            ["STREAMS__AutoRecovery__RetryDelay"] = "00:00:01",
        });
        await cluster.RunAsync(async c =>
        {
            await c.WaitForContainersAsync(Containers, Bound);
            await RunAsync(c);
        }, TimeSpan.FromMinutes(3) + Bound);
    }

    private static async Task RunAsync(ClusterProcesses cluster)
    {
        var cancellation = TestContext.Current.CancellationToken;
        await using var zookeeper = await ZooKeeperMetadataStore.ConnectAsync(cluster.ZooKeeper.ConnectionString, "/streams", TimeSpan.FromSeconds(10), NullLogger.Instance, cancellation);
        await using var bookies = new BookieDirectory(zookeeper, TimeSpan.FromSeconds(5));
        var manager = new LedgerManager(zookeeper, bookies, new LedgerOptions(), NullLogger.Instance);

        // Ledgers of our own, closed, whose every entry we know; and a segment store writing, rolling ledgers over.
        var own = new List<long>();
        for (var l = 0; l < OwnLedgers; l++)
        {
            var writer = await manager.CreateAsync(cancellation);
            await Task.WhenAll(Enumerable.Range(0, EntriesPerLedger).Select(i => writer.AddAsync(Payload(writer.LedgerId, i))));
            await writer.CloseAsync(cancellation);
            own.Add(writer.LedgerId);
        }

        await using var client = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var events = await ProcessTestClients.CreateStreamAndWriterAsync(client, "autorecovery", Containers);
        var load = AckedLoad.Start(events, maxDuration: TimeSpan.FromSeconds(90), padding: 2048);
        Assert.True(await load.WaitForAcknowledgedAsync(2_000, Bound), $"No write load before the fault: {load}");

        // Bookie 1 dies for good. With E = 3 of 3 bookies there is no spare: its ledgers stay marked.
        var victim = $"127.0.0.1:{cluster.Bookies[1].DataPort}";
        cluster.KillBookie(1);
        var killed = Stopwatch.StartNew();
        Assert.True(await load.WaitForAcknowledgedAsync(load.Acknowledged + 1_000, Bound), $"Writes stopped after the bookie died: {load}");
        await load.StopAsync(Bound);
        await events.DisposeAsync();
        Assert.True(load.Failed == 0, $"Writes failed: {load}");
        var marked = await EventuallyAsync(async () => (await zookeeper.GetChildrenAsync("/ledger-recovery/underreplicated", cancellation)).Count >= OwnLedgers, Bound);
        Assert.True(marked, "The auditor did not mark the ledgers of the dead bookie.");
        var markedAfter = killed.Elapsed;
        Assert.True(await EventuallyAsync(async () => await GaugeAsync(cluster) >= OwnLedgers, Bound), "The under-replicated gauge did not show the marked ledgers.");

        // A new bookie joins: every closed ledger is repaired onto it.
        await cluster.AddBookieAsync();
        var joined = Stopwatch.StartNew();
        var repaired = await EventuallyAsync(async () =>
            (await zookeeper.GetChildrenAsync("/ledger-recovery/underreplicated", cancellation)).Count == 0 && await GaugeAsync(cluster) == 0
            && (await ClosedLedgersAsync(zookeeper, cancellation)).All(l => !Places(l.Metadata, victim)), Bound);
        var repairTime = joined.Elapsed;
        Assert.True(repaired, $"Ledgers were still under-replicated {Bound} after a new bookie joined: {string.Join(", ", (await ClosedLedgersAsync(zookeeper, cancellation)).Where(l => Places(l.Metadata, victim)).Select(l => l.Id))}");

        var live = (await zookeeper.GetChildrenAsync(BookieDirectory.AvailablePath, cancellation)).ToHashSet();
        Assert.DoesNotContain(victim, live);
        var checkedLedgers = 0;
        var checkedCopies = 0;
        foreach (var (id, metadata) in await ClosedLedgersAsync(zookeeper, cancellation))
        {
            var copies = 0;
            var deleted = false;
            for (var entry = 0L; entry <= metadata.LastEntryId && !deleted; entry++)
            {
                var writeSet = metadata.WriteSetOf(entry);
                Assert.Equal(metadata.WriteQuorum, writeSet.Distinct().Count());
                foreach (var bookie in writeSet)
                {
                    Assert.Contains(bookie, live);
                    using var read = await (await bookies.GetAsync(bookie, cancellation)).ReadAsync(id, entry, cancellation);
                    if (read.Status == BookieStatus.NoSuchLedger && await zookeeper.GetAsync(LedgerMetadata.PathOf(id), cancellation) is null)
                    {
                        // Truncated away by the segment store meanwhile.
                        deleted = true;
                        break;
                    }

                    Assert.True(read.Status == BookieStatus.Ok, $"Ledger {id} entry {entry}: bookie {bookie} answered {read.Status}.");
                    Assert.Equal(read.Crc, Crc32C.Compute(read.Payload.Span));
                    if (own.Contains(id))
                    {
                        Assert.Equal(Payload(id, entry), read.Payload.ToArray());
                    }

                    copies++;
                }
            }

            if (!deleted)
            {
                checkedLedgers++;
                checkedCopies += copies;
            }
        }

        Assert.True(checkedLedgers >= OwnLedgers, $"Only {checkedLedgers} closed ledgers were left to check.");
        var repairedTotal = 0.0;
        foreach (var bookie in cluster.Bookies.Where(b => !b.HasExited))
        {
            repairedTotal += PrometheusText.Value(await PrometheusText.ScrapeAsync(bookie.MetricsPort, cancellation), "streams_ledger_recovery_repaired_ledgers_total") ?? 0;
        }

        Assert.True(repairedTotal >= OwnLedgers, $"streams_ledger_recovery_repaired_ledgers_total is {repairedTotal} over the live bookies.");
        await using var reader = ProcessTestClients.ForFaults(cluster.ControllerUri);
        load.Verify(await AckedLoad.ReadAllAsync(reader, "autorecovery", "events"));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"marked {markedAfter.TotalSeconds:F1} s after the kill; repaired {repairTime.TotalSeconds:F1} s after the new bookie joined; " +
            $"{repairedTotal} ledgers repaired; {checkedLedgers} closed ledgers, {checkedCopies} copies read back; {load}\n" +
            string.Join('\n', cluster.Bookies.SelectMany(b => b.Output.Split('\n')).Where(l => l.Contains("Repaired ledger", StringComparison.Ordinal) || l.Contains("Repairing ledger", StringComparison.Ordinal))));
    }

    private static byte[] Payload(long ledger, long entry) => Encoding.UTF8.GetBytes($"ledger-{ledger}-entry-{entry:D5}-" + new string('x', 300));

    /// <summary>Whether some entry of a closed ledger is placed on <paramref name="bookie"/>.</summary>
    private static bool Places(LedgerMetadata metadata, string bookie)
    {
        for (var entry = 0L; entry <= metadata.LastEntryId; entry++)
        {
            if (metadata.WriteSetOf(entry).Contains(bookie))
            {
                return true;
            }
        }

        return false;
    }

    private static async Task<List<(long Id, LedgerMetadata Metadata)>> ClosedLedgersAsync(IMetadataStore store, CancellationToken cancellationToken)
    {
        var closed = new List<(long, LedgerMetadata)>();
        foreach (var child in await store.GetChildrenAsync(LedgerMetadata.Root, cancellationToken))
        {
            if (!LedgerMetadata.TryParseName(child, out var id))
            {
                continue;
            }

            if (await store.GetAsync(LedgerMetadata.PathOf(id), cancellationToken) is { } stored && LedgerMetadata.FromJson(stored.Data) is { State: LedgerState.Closed } metadata)
            {
                closed.Add((id, metadata));
            }
        }

        return closed;
    }

    /// <summary>The gauge summed over live bookies (only the auditor reports it); null while none does.</summary>
    private static async Task<double?> GaugeAsync(ClusterProcesses cluster)
    {
        double? sum = null;
        foreach (var bookie in cluster.Bookies.Where(b => b is not null && !b.HasExited))
        {
            try
            {
                if (PrometheusText.Value(await PrometheusText.ScrapeAsync(bookie.MetricsPort), Gauge) is { } value)
                {
                    sum = (sum ?? 0) + value;
                }
            }
            catch (HttpRequestException)
            {
            }
        }

        return sum;
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(250);
        }

        return false;
    }
}
