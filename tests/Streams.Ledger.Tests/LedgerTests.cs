using System.Text;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Ledger.Tests;

public sealed class LedgerTests
{
    private static ReadOnlyMemory<byte> Payload(long i) => Encoding.UTF8.GetBytes($"entry-{i:D6}-" + new string('p', 200));

    private static async Task<List<string>> ReadAllAsync(LedgerManager manager, long ledgerId)
    {
        var (metadata, _) = await manager.ReadMetadataAsync(ledgerId);
        var values = new List<string>();
        for (var e = 0L; e <= metadata.LastEntryId; e++)
        {
            using var entry = await manager.ReadAsync(metadata, ledgerId, e);
            values.Add(Encoding.UTF8.GetString(entry.Data.Payload.Span)[..12]);
        }

        return values;
    }

    [Fact]
    public async Task Entries_are_acknowledged_in_order_and_read_back_after_close()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        var ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => writer.AddAsync(Payload(i))));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => (long)i), ids);
        Assert.Equal(199, writer.LastAddConfirmed);
        await writer.CloseAsync();

        var (metadata, _) = await manager.ReadMetadataAsync(writer.LedgerId);
        Assert.Equal((LedgerState.Closed, 199L), (metadata.State, metadata.LastEntryId));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"entry-{i:D6}"), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task Entries_are_striped_over_the_ensemble()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var writer = await cluster.Manager(3, 2, 2).CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 300).Select(i => writer.AddAsync(Payload(i))));

        // An entry sent after the first 300 were acknowledged carries their LAC to its write set.
        await writer.AddAsync(Payload(300));
        var lastWriteSet = writer.Metadata.WriteSetOf(300);

        // Qw = 2 of E = 3: each bookie holds two thirds of the entries.
        foreach (var bookie in cluster.Bookies)
        {
            var lac = cluster.StoreOf(bookie.BookieId).ReadLac(writer.LedgerId);
            var held = 0;
            for (var e = 0; e < 300; e++)
            {
                using var read = await cluster.StoreOf(bookie.BookieId).ReadAsync(writer.LedgerId, e);
                held += read.Status == BookieStatus.Ok ? 1 : 0;
            }

            Assert.Equal(200, held);

            // Only entry 300's write set heard of LAC 299; the other bookie knows whatever LAC the last of the first
            // 300 entries it stored carried (-1 if all were sent before any was acknowledged, more if acks came first).
            if (lastWriteSet.Contains(bookie.BookieId))
            {
                Assert.Equal(299, lac.LastAddConfirmed);
            }
            else
            {
                Assert.InRange(lac.LastAddConfirmed, -1, 298);
            }
        }
    }

    [Fact]
    public async Task A_failed_bookie_is_replaced_and_writing_goes_on()
    {
        await using var cluster = await LocalBookies.StartAsync(4);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 50).Select(i => writer.AddAsync(Payload(i))));

        var victim = writer.Metadata.Fragments[0].Bookies[1];
        cluster.Bookie(victim).Down = true;
        await Task.WhenAll(Enumerable.Range(50, 150).Select(i => writer.AddAsync(Payload(i))));
        await writer.CloseAsync();

        var (metadata, _) = await manager.ReadMetadataAsync(writer.LedgerId);
        Assert.Equal(2, metadata.Fragments.Count);
        Assert.DoesNotContain(victim, metadata.Fragments[1].Bookies);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"entry-{i:D6}"), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task Without_a_spare_bookie_writes_go_on_while_the_ack_quorum_holds()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        cluster.Bookies[0].Down = true;
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => writer.AddAsync(Payload(i))));
        Assert.Equal(99, writer.LastAddConfirmed);

        // A second failure leaves one bookie per write set: below Qa, the writer stops.
        cluster.Bookies[1].Down = true;
        await Assert.ThrowsAsync<NotEnoughBookiesException>(() => writer.AddAsync(Payload(100)));
        cluster.Bookies[0].Down = false;
        cluster.Bookies[1].Down = false;

        var recovered = await manager.RecoverAsync(writer.LedgerId);
        Assert.True(recovered.LastEntryId >= 99);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"entry-{i:D6}"), (await ReadAllAsync(manager, writer.LedgerId)).Take(100));
    }

    [Fact]
    public async Task Recovery_fences_the_old_writer_and_keeps_every_acknowledged_entry()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var zombie = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 120).Select(i => zombie.AddAsync(Payload(i))));

        // A new owner recovers the ledger while the old writer still runs.
        var recovered = await cluster.Manager(3, 3, 2).RecoverAsync(zombie.LedgerId);
        Assert.Equal((LedgerState.Closed, 119L), (recovered.State, recovered.LastEntryId));

        await Assert.ThrowsAnyAsync<LedgerException>(() => zombie.AddAsync(Payload(120)));
        foreach (var bookie in cluster.Bookies)
        {
            Assert.True(cluster.StoreOf(bookie.BookieId).ReadLac(zombie.LedgerId).Fenced);
        }

        Assert.Equal(120, (await ReadAllAsync(manager, zombie.LedgerId)).Count);
        var again = await manager.RecoverAsync(zombie.LedgerId);
        Assert.Equal((recovered.State, recovered.LastEntryId), (again.State, again.LastEntryId));
    }

    [Fact]
    public async Task Recovery_keeps_a_tail_entry_that_reached_only_one_bookie()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => writer.AddAsync(Payload(i))));

        // Entry 10 reached one bookie before its writer died: recovery finds it and replicates it.
        var lone = writer.Metadata.Fragments[0].Bookies[0];
        var payload = Payload(10);
        Assert.Equal(BookieStatus.Ok, await cluster.Bookie(lone).AddAsync(writer.LedgerId, 10, 9, Crc32C.Compute(payload.Span), false, new EntryPayload(payload)));

        var recovered = await manager.RecoverAsync(writer.LedgerId);
        Assert.Equal(10, recovered.LastEntryId);
        cluster.Bookie(lone).Down = true;
        Assert.Equal("entry-000010", (await ReadAllAsync(manager, writer.LedgerId))[10]);
    }

    [Fact]
    public async Task Reads_skip_a_bookie_that_serves_a_corrupt_copy()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        await writer.AddAsync(Payload(0));
        await writer.CloseAsync();

        cluster.Bookies[0].Down = true;
        Assert.Equal("entry-000000", (await ReadAllAsync(manager, writer.LedgerId))[0]);
    }

    [Fact]
    public async Task Deleting_a_ledger_removes_it_from_bookies_and_metadata()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        await writer.AddAsync(Payload(0));
        await writer.CloseAsync();
        await manager.DeleteAsync(writer.LedgerId);

        await Assert.ThrowsAsync<LedgerException>(() => manager.ReadMetadataAsync(writer.LedgerId));
        foreach (var bookie in cluster.Bookies)
        {
            using var read = await cluster.StoreOf(bookie.BookieId).ReadAsync(writer.LedgerId, 0);
            Assert.Equal(BookieStatus.NoSuchLedger, read.Status);
        }
    }

    [Fact]
    public async Task Creating_needs_at_least_an_ack_quorum_of_bookies()
    {
        await using var cluster = await LocalBookies.StartAsync(2);
        var error = await Assert.ThrowsAsync<NotEnoughBookiesException>(() => cluster.Manager(3, 3, 3).CreateAsync());
        Assert.Contains("needs at least 3 bookies (Qa); 2 are available", error.Message);
    }

    [Fact]
    public async Task With_fewer_bookies_than_the_ensemble_a_ledger_shrinks_its_ensemble_but_keeps_the_ack_quorum()
    {
        await using var cluster = await LocalBookies.StartAsync(2);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();

        var (metadata, _) = await manager.ReadMetadataAsync(writer.LedgerId);
        Assert.Equal((2, 2, 2), (metadata.EnsembleSize, metadata.WriteQuorum, metadata.AckQuorum));
        for (var i = 0; i < 10; i++)
        {
            await writer.AddAsync(Payload(i));
        }

        foreach (var bookie in cluster.Bookies)
        {
            using var read = await cluster.StoreOf(bookie.BookieId).ReadAsync(writer.LedgerId, 9);
            Assert.Equal(BookieStatus.Ok, read.Status);
        }
    }

    [Fact]
    public async Task Reads_and_recovery_move_past_a_bookie_that_never_answers_within_the_read_timeout()
    {
        var options = new LedgerOptions { AddTimeout = TimeSpan.FromSeconds(1.5), ReadTimeout = TimeSpan.FromSeconds(1.5) };
        await using var cluster = await LocalBookies.StartAsync(3, options);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => writer.AddAsync(Payload(i))));

        // Frozen: it neither answers the fence nor reads, and ignores cancellation.
        var frozen = writer.Metadata.Fragments[0].Bookies[0];
        cluster.Bookie(frozen).Fault = BookieFault.Hang;
        var recovered = await cluster.Manager(3, 3, 2).RecoverAsync(writer.LedgerId).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(9, recovered.LastEntryId);

        // The first read waits out one deadline; the frozen bookie is then asked last.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"entry-{i:D6}"), await ReadAllAsync(manager, writer.LedgerId).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(clock.Elapsed < options.ReadTimeout * 4, $"Reading 10 entries past a frozen bookie took {clock.Elapsed}.");
    }
}
