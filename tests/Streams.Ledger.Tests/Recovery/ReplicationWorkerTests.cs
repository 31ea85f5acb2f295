using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Ledger.Bookies;
using Streams.Ledger.Recovery;

namespace Streams.Ledger.Tests.Recovery;

public sealed class ReplicationWorkerTests
{
    private static readonly AutoRecoveryOptions Options = new() { LostBookieGracePeriod = TimeSpan.Zero, CopyParallelism = 1 };

    /// <summary>
    /// E + 1 bookies, a closed ledger on E of them, its bookie at position <paramref name="victim"/> dead and the
    /// ledger marked; the bookie outside its ensemble is the only spare.
    /// </summary>
    private static async Task<(LocalBookies Cluster, LedgerManager Manager, long Ledger, string Victim, string Spare)> MarkedAsync(
        int e, int qw, int entries = 60, int victim = 1, LedgerOptions? options = null)
    {
        var cluster = await LocalBookies.StartAsync(e + 1, options);
        await cluster.RegisterAsync(cluster.Bookies);
        var manager = cluster.Manager(e, qw, 2);
        var ledger = await LedgerAuditorTests.WriteAsync(manager, entries);
        var ensemble = ledger.Metadata.Fragments[0].Bookies;

        // With Qa < Qw an entry is acknowledged before its last copy is stored: wait for every copy, so that the
        // survivors hold what the tests below take from them.
        for (var entry = 0L; entry < entries; entry++)
        {
            foreach (var bookie in ledger.Metadata.WriteSetOf(entry))
            {
                await StoredAsync(cluster, bookie, ledger.LedgerId, entry);
            }
        }

        var spare = cluster.Bookies.Single(b => !ensemble.Contains(b.BookieId)).BookieId;
        await cluster.KillAsync(ensemble[victim]);
        await new LedgerAuditor(cluster.Metadata, Options, NullLogger.Instance).AuditAsync(await cluster.Metadata.GetChildrenAsync(BookieDirectory.AvailablePath), default);
        return (cluster, manager, ledger.LedgerId, ensemble[victim], spare);
    }

    private static async Task StoredAsync(LocalBookies cluster, string bookie, long ledgerId, long entry)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using (var copy = await cluster.StoreOf(bookie).ReadAsync(ledgerId, entry))
            {
                if (copy.Status == BookieStatus.Ok)
                {
                    return;
                }
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"Bookie {bookie} did not store entry {entry} of ledger {ledgerId} within 20 s.");
            await Task.Delay(10);
        }
    }

    private static ReplicationWorker Worker(LocalBookies cluster) => new(cluster.Metadata, cluster.Directory, "worker", Options, NullLogger.Instance);

    /// <summary>Reads every entry from every bookie of its write set directly: each must serve it, intact.</summary>
    private static async Task AssertFullyReplicatedAsync(LocalBookies cluster, LedgerManager manager, long ledgerId)
    {
        var (metadata, _) = await manager.ReadMetadataAsync(ledgerId);
        for (var entry = 0L; entry <= metadata.LastEntryId; entry++)
        {
            foreach (var bookie in metadata.WriteSetOf(entry))
            {
                Assert.False(cluster.Bookie(bookie).Down, $"Entry {entry} is still placed on the dead bookie {bookie}.");
                using var read = await cluster.StoreOf(bookie).ReadAsync(ledgerId, entry);
                Assert.True(read.Status == BookieStatus.Ok, $"Bookie {bookie} answered {read.Status} for entry {entry}.");
                Assert.Equal(LedgerAuditorTests.Payload(entry).ToArray(), read.Payload.ToArray());
                Assert.Equal(Crc32C.Compute(read.Payload.Span), read.Crc);
            }
        }
    }

    [Theory]
    [InlineData(3, 3)]
    [InlineData(3, 2)]
    public async Task A_marked_ledger_gets_its_lost_copies_back_on_a_spare_bookie_and_its_metadata_names_it(int e, int qw)
    {
        var (cluster, manager, ledger, victim, spare) = await MarkedAsync(e, qw);
        await using var _ = cluster;
        Assert.Equal(ReplicationWorker.Outcome.Repaired, await Worker(cluster).RepairAsync(ledger));

        var (metadata, _) = await manager.ReadMetadataAsync(ledger);
        Assert.DoesNotContain(victim, metadata.Fragments[0].Bookies);
        Assert.Contains(spare, metadata.Fragments[0].Bookies);
        Assert.Equal(LedgerState.Closed, metadata.State);
        await AssertFullyReplicatedAsync(cluster, manager, ledger);
        Assert.Empty(await new UnderReplicatedLedgers(cluster.Metadata).ListAsync(default));
    }

    [Fact]
    public async Task A_copy_failing_its_checksum_is_never_copied()
    {
        var (cluster, manager, ledger, victim, spare) = await MarkedAsync(3, 3);
        await using var _ = cluster;
        var survivors = cluster.Bookies.Where(b => b.BookieId != victim && b.BookieId != spare).ToList();

        // One survivor serves a damaged entry 7: it is taken from the other one.
        survivors[0].CorruptEntry = 7;
        Assert.Equal(ReplicationWorker.Outcome.Repaired, await Worker(cluster).RepairAsync(ledger));
        await AssertFullyReplicatedAsync(cluster, manager, ledger);
    }

    [Fact]
    public async Task A_frozen_source_costs_the_repair_one_read_deadline_and_is_read_last_from_then_on()
    {
        // Adds get room on a busy machine; reads of a frozen bookie give up after 2 s.
        var options = new LedgerOptions { AddTimeout = TimeSpan.FromSeconds(30), ReadTimeout = TimeSpan.FromSeconds(2) };
        var (cluster, manager, ledger, victim, spare) = await MarkedAsync(3, 3, entries: 20, options: options);
        await using var _ = cluster;
        var frozen = cluster.Bookies.First(b => b.BookieId != victim && b.BookieId != spare);

        // It never answers and ignores cancellation: only the call's deadline gets the repair past it.
        frozen.Fault = BookieFault.Hang;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var outcome = await Worker(cluster).RepairAsync(ledger, TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        TestContext.Current.TestOutputHelper?.WriteLine($"repair with a frozen source took {clock.Elapsed.TotalSeconds:F2} s");

        Assert.Equal(ReplicationWorker.Outcome.Repaired, outcome);
        Assert.True(cluster.Directory.IsSuspect(frozen.BookieId), "The frozen bookie is not suspect after it missed a deadline.");
        // Read last once suspect: 20 entries do not each wait out a deadline.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"The repair took {clock.Elapsed.TotalSeconds:F2} s with one frozen source (read deadline 2 s).");
        frozen.Fault = BookieFault.None;
        await AssertFullyReplicatedAsync(cluster, manager, ledger);
    }

    [Fact]
    public async Task With_no_intact_copy_of_an_entry_the_repair_fails_and_records_nothing()
    {
        var (cluster, manager, ledger, victim, spare) = await MarkedAsync(3, 3);
        await using var _ = cluster;
        foreach (var survivor in cluster.Bookies.Where(b => b.BookieId != victim && b.BookieId != spare))
        {
            survivor.CorruptEntry = 7;
        }

        await Assert.ThrowsAsync<LedgerException>(() => Worker(cluster).RepairAsync(ledger));
        var (metadata, _) = await manager.ReadMetadataAsync(ledger);
        Assert.Contains(victim, metadata.Fragments[0].Bookies);
        using var copy = await cluster.StoreOf(spare).ReadAsync(ledger, 7);
        Assert.NotEqual(BookieStatus.Ok, copy.Status);
        Assert.Equal([ledger], await new UnderReplicatedLedgers(cluster.Metadata).ListAsync(default));
    }

    [Fact]
    public async Task Without_a_spare_bookie_the_repair_fails_and_the_mark_stays()
    {
        var (cluster, _, ledger, _, spare) = await MarkedAsync(3, 3);
        await using var __ = cluster;
        await cluster.KillAsync(spare);
        await Assert.ThrowsAsync<NotEnoughBookiesException>(() => Worker(cluster).RepairAsync(ledger));
        Assert.Equal([ledger], await new UnderReplicatedLedgers(cluster.Metadata).ListAsync(default));
    }

    [Fact]
    public async Task A_ledger_deleted_while_its_copies_are_made_is_not_written_back_and_the_copies_go()
    {
        var (cluster, manager, ledger, _, spare) = await MarkedAsync(3, 3, entries: 30);
        await using var _ = cluster;
        // Truncation deletes the ledger between the last copy and the compare-and-set that would record it.
        cluster.Bookie(spare).AfterAdd = async entry =>
        {
            if (entry == 29)
            {
                await manager.DeleteAsync(ledger);
            }
        };

        Assert.Equal(ReplicationWorker.Outcome.Deleted, await Worker(cluster).RepairAsync(ledger));
        Assert.Null(await cluster.Metadata.GetAsync(LedgerMetadata.PathOf(ledger)));
        Assert.Equal(BookieStatus.NoSuchLedger, cluster.StoreOf(spare).ReadLac(ledger).Status);
        Assert.Empty(await new UnderReplicatedLedgers(cluster.Metadata).ListAsync(default));
    }

    [Fact]
    public async Task A_delete_that_read_the_metadata_before_a_repair_was_recorded_also_deletes_the_new_copies()
    {
        var (cluster, manager, ledger, victim, spare) = await MarkedAsync(3, 3, entries: 30);
        await using var _ = cluster;
        // The deleter read the metadata (without the spare) and is cleaning bookies when the repair is recorded.
        var first = cluster.Bookies.First(b => b.BookieId != victim && b.BookieId != spare);
        var repaired = (ReplicationWorker.Outcome?)null;
        first.BeforeDelete = async () =>
        {
            first.BeforeDelete = null;
            repaired = await Worker(cluster).RepairAsync(ledger);
        };

        await manager.DeleteAsync(ledger);
        Assert.Equal(ReplicationWorker.Outcome.Repaired, repaired);
        Assert.Null(await cluster.Metadata.GetAsync(LedgerMetadata.PathOf(ledger)));
        Assert.Equal(BookieStatus.NoSuchLedger, cluster.StoreOf(spare).ReadLac(ledger).Status);
    }

    [Fact]
    public async Task A_metadata_change_during_the_copy_is_kept_and_the_repair_is_made_on_top_of_it()
    {
        var (cluster, manager, ledger, _, spare) = await MarkedAsync(3, 3, entries: 30);
        await using var _ = cluster;
        var path = LedgerMetadata.PathOf(ledger);
        cluster.Bookie(spare).AfterAdd = async entry =>
        {
            if (entry == 29)
            {
                cluster.Bookie(spare).AfterAdd = null;
                // Someone else writes the ledger's metadata: the repair's compare-and-set must not overwrite it blindly.
                var stored = (await cluster.Metadata.GetAsync(path))!.Value;
                var changed = LedgerMetadata.FromJson(stored.Data) with { Length = 12345 };
                Assert.NotNull(await cluster.Metadata.TrySetAsync(path, changed.ToJson(), stored.Version));
            }
        };

        Assert.Equal(ReplicationWorker.Outcome.Repaired, await Worker(cluster).RepairAsync(ledger));
        var (metadata, _) = await manager.ReadMetadataAsync(ledger);
        Assert.Equal(12345, metadata.Length);
        Assert.Contains(spare, metadata.Fragments[0].Bookies);
        await AssertFullyReplicatedAsync(cluster, manager, ledger);
    }
}
