using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.Bookie;
using Streams.Ledger.Bookies;

namespace Streams.Ledger.Tests;

/// <summary><see cref="LedgerManager.ReadRangeAsync"/>: reads ahead within its budget, yields in order, fails in place.</summary>
public sealed class LedgerReadRangeTests
{
    private const int EntrySize = 1000;

    private static ReadOnlyMemory<byte> Payload(long i) => Encoding.UTF8.GetBytes($"entry-{i:D6}-".PadRight(EntrySize, 'p'));

    private static async Task<(LedgerManager Manager, LedgerMetadata Metadata, long LedgerId)> LedgerAsync(LocalBookies cluster, SlowBookie bookie, int entries)
    {
        var directory = new BookieDirectory(cluster.Metadata, TimeSpan.FromSeconds(5));
        directory.AddLocal(bookie);
        var manager = new LedgerManager(cluster.Metadata, directory, new LedgerOptions { EnsembleSize = 1, WriteQuorum = 1, AckQuorum = 1 }, NullLogger.Instance);
        var writer = await manager.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, entries).Select(i => writer.AddAsync(Payload(i))));
        await writer.CloseAsync();
        return (manager, (await manager.ReadMetadataAsync(writer.LedgerId)).Metadata, writer.LedgerId);
    }

    private static async Task<List<string>> ReadRangeAsync(LedgerManager manager, LedgerMetadata metadata, long ledgerId, long first, long last, long budget)
    {
        var values = new List<string>();
        await foreach (var entry in manager.ReadRangeAsync(metadata, ledgerId, first, last, budget))
        {
            using (entry)
            {
                values.Add(Encoding.UTF8.GetString(entry.Data.Payload.Span)[..12]);
            }
        }

        return values;
    }

    [Fact]
    public async Task Reads_run_ahead_of_the_consumer_within_the_byte_budget_and_come_back_in_order()
    {
        await using var cluster = await LocalBookies.StartAsync(1);
        var bookie = new SlowBookie(cluster.Bookies[0]);
        var (manager, metadata, ledgerId) = await LedgerAsync(cluster, bookie, 200);

        bookie.Delay = TimeSpan.FromMilliseconds(2);
        Assert.Equal(Enumerable.Range(5, 195).Select(i => $"entry-{i:D6}"), await ReadRangeAsync(manager, metadata, ledgerId, 5, 199, budget: 8 * EntrySize));
        Assert.InRange(bookie.MaxInFlight, 2, 8);

        bookie.MaxInFlight = 0;
        Assert.Equal(200, (await ReadRangeAsync(manager, metadata, ledgerId, 0, 199, budget: 1L << 30)).Count);
        Assert.InRange(bookie.MaxInFlight, 9, LedgerManager.MaxReadsAhead);

        // A budget smaller than one entry still reads: one entry at a time.
        bookie.MaxInFlight = 0;
        Assert.Equal(10, (await ReadRangeAsync(manager, metadata, ledgerId, 0, 9, budget: 1)).Count);
        Assert.Equal(1, bookie.MaxInFlight);
    }

    [Fact]
    public async Task An_unreadable_entry_fails_where_it_stands_after_the_entries_before_it()
    {
        await using var cluster = await LocalBookies.StartAsync(1);
        var bookie = new SlowBookie(cluster.Bookies[0]);
        var (manager, metadata, ledgerId) = await LedgerAsync(cluster, bookie, 50);

        bookie.Missing = 30;
        var read = new List<long>();
        var error = await Assert.ThrowsAsync<LedgerException>(async () =>
        {
            await foreach (var entry in manager.ReadRangeAsync(metadata, ledgerId, 0, 49, 16 * EntrySize))
            {
                using (entry)
                {
                    read.Add(entry.EntryId);
                }
            }
        });

        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), read);
        Assert.Contains("Entry 30 ", error.Message);
        Assert.Equal(0, bookie.InFlight);
    }

    /// <summary>A bookie whose reads take a while, counted as they overlap; one entry can be made to be missing.</summary>
    private sealed class SlowBookie(IBookieClient inner) : IBookieClient
    {
        private int _inFlight;

        public TimeSpan Delay { get; set; }

        public long Missing { get; set; } = -1;

        public int InFlight => Volatile.Read(ref _inFlight);

        public int MaxInFlight { get; set; }

        public string BookieId => inner.BookieId;

        public async Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
        {
            var now = Interlocked.Increment(ref _inFlight);
            lock (this)
            {
                MaxInFlight = Math.Max(MaxInFlight, now);
            }

            try
            {
                await Task.Delay(Delay, cancellationToken);
                return entry == Missing ? new BookieEntry(BookieStatus.NoSuchEntry, -1, 0, ReadOnlyMemory<byte>.Empty) : await inner.ReadAsync(ledger, entry, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        public Task<BookieStatus> AddAsync(long ledger, long entry, long lac, uint crc, bool recovery, EntryPayload payload, CancellationToken cancellationToken = default) =>
            inner.AddAsync(ledger, entry, lac, crc, recovery, payload, cancellationToken);

        public Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default) => inner.ReadLacAsync(ledger, cancellationToken);

        public Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default) => inner.FenceAsync(ledger, cancellationToken);

        public Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default) => inner.DeleteAsync(ledger, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
