using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Ledger.Recovery;

namespace Streams.Ledger.Tests.Recovery;

public sealed class LedgerAuditorTests
{
    private static readonly AutoRecoveryOptions Options = new() { LostBookieGracePeriod = TimeSpan.FromSeconds(30) };

    internal static ReadOnlyMemory<byte> Payload(long i) => Encoding.UTF8.GetBytes($"entry-{i:D6}-" + new string('r', 100));

    internal static async Task<LedgerWriter> WriteAsync(LedgerManager manager, int entries, bool close = true)
    {
        var writer = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, entries).Select(i => writer.AddAsync(Payload(i))));
        if (close)
        {
            await writer.CloseAsync();
        }

        return writer;
    }

    [Fact]
    public async Task A_closed_ledger_is_marked_once_its_bookie_is_missing_past_the_grace_period_and_cleared_when_it_returns()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        await cluster.RegisterAsync(cluster.Bookies);
        var manager = cluster.Manager(3, 3, 2);
        var closed = await WriteAsync(manager, 20);
        var open = await WriteAsync(manager, 5, close: false);
        var clock = new ManualClock();
        var auditor = new LedgerAuditor(cluster.Metadata, Options, NullLogger.Instance, clock);
        var marks = new UnderReplicatedLedgers(cluster.Metadata);
        var victim = cluster.Bookies[1].BookieId;

        await cluster.KillAsync(victim);
        var registered = await cluster.Metadata.GetChildrenAsync(Ledger.Bookies.BookieDirectory.AvailablePath);
        var first = await auditor.AuditAsync(registered, default);
        Assert.Equal(0, first.Marked);
        Assert.Equal(TimeSpan.FromSeconds(30), first.NextAudit);
        Assert.Empty(await marks.ListAsync(default));

        clock.Advance(TimeSpan.FromSeconds(31));
        var second = await auditor.AuditAsync(registered, default);
        Assert.Equal((2, 1), (second.Ledgers, second.Marked));
        // Only the closed ledger: the open one is its writer's to repair; it is looked at again soon.
        Assert.Equal([closed.LedgerId], await marks.ListAsync(default));
        Assert.Equal([victim], (await marks.GetAsync(closed.LedgerId, default))!.Value.Mark.LostBookies);
        Assert.Equal(Options.RetryDelay, second.NextAudit);
        Assert.Equal(1, auditor.UnderReplicated);

        await cluster.RegisterAsync(cluster.Bookie(victim));
        var third = await auditor.AuditAsync(await cluster.Metadata.GetChildrenAsync(Ledger.Bookies.BookieDirectory.AvailablePath), default);
        Assert.Equal(0, third.Marked);
        Assert.Empty(await marks.ListAsync(default));
        _ = open;
    }

    [Fact]
    public async Task A_mark_of_a_deleted_ledger_is_removed()
    {
        await using var cluster = await LocalBookies.StartAsync(3);
        await cluster.RegisterAsync(cluster.Bookies);
        var manager = cluster.Manager(3, 3, 2);
        var ledger = await WriteAsync(manager, 10);
        var auditor = new LedgerAuditor(cluster.Metadata, Options with { LostBookieGracePeriod = TimeSpan.Zero }, NullLogger.Instance);
        var marks = new UnderReplicatedLedgers(cluster.Metadata);
        await cluster.KillAsync(cluster.Bookies[0].BookieId);
        await auditor.AuditAsync(await cluster.Metadata.GetChildrenAsync(Ledger.Bookies.BookieDirectory.AvailablePath), default);
        Assert.Equal([ledger.LedgerId], await marks.ListAsync(default));

        await manager.DeleteAsync(ledger.LedgerId);
        var after = await auditor.AuditAsync(await cluster.Metadata.GetChildrenAsync(Ledger.Bookies.BookieDirectory.AvailablePath), default);
        Assert.Equal((0, 0), (after.Ledgers, after.Marked));
        Assert.Empty(await marks.ListAsync(default));
    }

    [Fact]
    public void A_bookie_that_stores_no_entry_of_a_fragment_lost_no_copy()
    {
        // E = 3, Qw = 2: entry 0 is on positions 0 and 1, entry 1 on 1 and 2, entry 2 on 2 and 0.
        var metadata = new LedgerMetadata(3, 2, 2, LedgerState.Closed, 2, 0,
            [new LedgerFragment(0, ["a", "b", "c"]), new LedgerFragment(1, ["a", "b", "d"]), new LedgerFragment(2, ["e", "b", "d"])], 0);
        // Fragment 0 holds entry 0 (a, b); fragment 1 entry 1 (b, d); fragment 2 entry 2 (d, e).
        Assert.Empty(LedgerReplicas.LostCopies(metadata, b => b == "c"));
        Assert.Equal(["a"], LedgerReplicas.LostCopies(metadata, b => b == "a"));
        Assert.Equal(["b", "d"], LedgerReplicas.LostCopies(metadata, b => b is "b" or "d"));
        Assert.Equal(["e"], LedgerReplicas.LostCopies(metadata, b => b == "e"));
        Assert.Equal((2L, 2L), LedgerReplicas.RangeOf(metadata, 2));
    }
}
