using System.Diagnostics;
using System.Text;
using Streams.Contracts.Bookie;

namespace Streams.Ledger.Tests;

/// <summary>
/// The writer under bookie faults: every add has a deadline, any failure of a bookie call is a bookie failure
/// (replaced, or carried on without), and a bookie that failed is used again once it answers.
/// </summary>
public sealed class LedgerWriterTests
{
    /// <summary>Far longer than any fault here should take; a writer that hangs fails the test instead of blocking it.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    /// <summary>Short deadlines, yet long enough that a healthy bookie on a busy test machine meets them.</summary>
    private static readonly LedgerOptions Fast = new()
    {
        AddTimeout = TimeSpan.FromSeconds(1.5),
        ReadTimeout = TimeSpan.FromSeconds(1.5),
        RetryDelay = TimeSpan.FromMilliseconds(100),
    };

    private static ReadOnlyMemory<byte> Payload(long i) => Encoding.UTF8.GetBytes($"entry-{i:D6}-" + new string('p', 100));

    private static Task<long[]> AddAllAsync(LedgerWriter writer, int from, int count) =>
        Task.WhenAll(Enumerable.Range(from, count).Select(i => writer.AddAsync(Payload(i)))).WaitAsync(Bound);

    private static async Task<List<string>> ReadAllAsync(LedgerManager manager, long ledgerId)
    {
        var (metadata, _) = await manager.ReadMetadataAsync(ledgerId);
        var values = new List<string>();
        for (var e = 0L; e <= metadata.LastEntryId; e++)
        {
            using var entry = await manager.ReadAsync(metadata, ledgerId, e).WaitAsync(Bound);
            values.Add(Encoding.UTF8.GetString(entry.Data.Payload.Span)[..12]);
        }

        return values;
    }

    /// <summary>Whether a bookie stores an entry within the bound (its copy may still be on the way when the entry is acknowledged).</summary>
    private static async Task<bool> HoldsAsync(LocalBookies cluster, string bookie, long ledgerId, long entryId)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Bound)
        {
            using (var copy = await cluster.StoreOf(bookie).ReadAsync(ledgerId, entryId))
            {
                if (copy.Status == BookieStatus.Ok)
                {
                    return true;
                }
            }

            await Task.Delay(20);
        }

        return false;
    }

    private static IEnumerable<string> Entries(int count) => Enumerable.Range(0, count).Select(i => $"entry-{i:D6}");

    [Theory]
    [InlineData(BookieFault.Hang)]
    [InlineData(BookieFault.Disposed)]
    public async Task A_bookie_that_hangs_or_throws_is_replaced_within_the_add_timeout(BookieFault fault)
    {
        await using var cluster = await LocalBookies.StartAsync(4, Fast);
        var manager = cluster.Manager(3, 3, 3);
        var writer = await manager.CreateAsync();
        await AddAllAsync(writer, 0, 20);

        // With Qa = Qw every copy is needed: the entry waits for the faulty bookie until it is given up.
        var victim = writer.Metadata.Fragments[0].Bookies[1];
        cluster.Bookie(victim).Fault = fault;
        var clock = Stopwatch.StartNew();
        var ids = await AddAllAsync(writer, 20, 30);
        var stall = clock.Elapsed;
        Assert.Equal(Enumerable.Range(20, 30).Select(i => (long)i), ids);
        Assert.True(stall < Fast.AddTimeout * 4, $"The writer needed {stall} to move past a bookie that never answers (add timeout {Fast.AddTimeout}).");

        await writer.CloseAsync().WaitAsync(Bound);
        var (metadata, _) = await manager.ReadMetadataAsync(writer.LedgerId);
        Assert.DoesNotContain(victim, metadata.Fragments[^1].Bookies);
        Assert.Equal(Entries(50), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task Without_a_spare_a_bookie_that_never_answers_holds_back_neither_acknowledgements_nor_close()
    {
        await using var cluster = await LocalBookies.StartAsync(3, Fast);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        cluster.Bookies[2].Fault = BookieFault.Hang;
        await AddAllAsync(writer, 0, 50);
        await writer.CloseAsync().WaitAsync(Bound);

        Assert.Equal(Entries(50), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task A_bookie_that_comes_back_is_written_to_again_so_a_second_failure_keeps_the_ack_quorum()
    {
        await using var cluster = await LocalBookies.StartAsync(3, Fast);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        var (first, second) = (cluster.Bookies[0], cluster.Bookies[1]);

        // E = the number of bookies: nothing can replace the first one, the writer carries on with two.
        first.Down = true;
        await AddAllAsync(writer, 0, 50);

        // It restarts: after the retry delay it gets new entries again.
        first.Down = false;
        await Task.Delay(Fast.RetryDelay * 3);
        await AddAllAsync(writer, 50, 50);
        Assert.True(await HoldsAsync(cluster, first.BookieId, writer.LedgerId, 99), "The bookie that came back got no new entries.");

        // One failure at a time: with the first one back, losing the second still leaves Qa = 2.
        second.Down = true;
        await AddAllAsync(writer, 100, 50);
        await writer.CloseAsync().WaitAsync(Bound);
        Assert.Equal(149, (await manager.ReadMetadataAsync(writer.LedgerId)).Metadata.LastEntryId);
        Assert.Equal(Entries(150), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task A_replaced_bookie_that_comes_back_can_replace_the_next_failure()
    {
        await using var cluster = await LocalBookies.StartAsync(4, Fast);
        var manager = cluster.Manager(3, 3, 3);
        var writer = await manager.CreateAsync();
        await AddAllAsync(writer, 0, 10);

        var first = writer.Metadata.Fragments[0].Bookies[0];
        cluster.Bookie(first).Down = true;
        await AddAllAsync(writer, 10, 10);
        Assert.DoesNotContain(first, writer.Metadata.Fragments[^1].Bookies);

        // The replaced bookie restarts; the next failure has no spare but it.
        cluster.Bookie(first).Down = false;
        await Task.Delay(Fast.RetryDelay * 3);
        var next = writer.Metadata.Fragments[^1].Bookies[0];
        cluster.Bookie(next).Down = true;
        await AddAllAsync(writer, 20, 10);
        Assert.Contains(first, writer.Metadata.Fragments[^1].Bookies);

        await writer.CloseAsync().WaitAsync(Bound);
        Assert.Equal(Entries(30), await ReadAllAsync(manager, writer.LedgerId));
    }

    [Fact]
    public async Task A_new_ledger_prefers_bookies_that_answer_but_takes_a_suspect_to_fill_its_ensemble()
    {
        await using var cluster = await LocalBookies.StartAsync(4, Fast);
        var manager = cluster.Manager(3, 3, 2);
        var writer = await manager.CreateAsync();
        var suspect = writer.Metadata.Fragments[0].Bookies[0];
        cluster.Bookie(suspect).Down = true;
        await AddAllAsync(writer, 0, 10);
        Assert.True(cluster.Directory.IsSuspect(suspect));

        // Three others answer: the suspect is left out.
        Assert.DoesNotContain(suspect, (await manager.CreateAsync()).Metadata.Fragments[0].Bookies);

        // It answers again (a probe finds it back): it is a bookie like any other.
        cluster.Bookie(suspect).Down = false;
        await Task.Delay(Fast.RetryDelay * 2);
        await cluster.Directory.ProbeAsync(suspect).WaitAsync(Bound);
        Assert.False(cluster.Directory.IsSuspect(suspect));
    }
}
