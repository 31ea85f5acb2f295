using System.Buffers;
using System.Text;
using Streams.Bookie.Storage;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Tests.Storage;

public sealed class BookieStoreTests : IDisposable
{
    private readonly BookieStoreDirectory _dir = new("bookie");

    public void Dispose() => _dir.Dispose();

    private Task<BookieStore> OpenAsync(int segmentBits = 20) => _dir.OpenAsync(segmentBits);

    private static Task<BookieStatus> AddAsync(BookieStore store, long ledger, long entry, string payload, long lac = -1, bool recovery = false) =>
        BookieStoreDirectory.AddAsync(store, ledger, entry, Encoding.UTF8.GetBytes(payload), lac, recovery);

    private static async Task<string?> ReadAsync(BookieStore store, long ledger, long entry)
    {
        using var read = await store.ReadAsync(ledger, entry);
        return read.Status == BookieStatus.Ok ? Encoding.UTF8.GetString(read.Payload.Span) : null;
    }

    [Fact]
    public async Task Entries_are_stored_read_and_survive_a_restart()
    {
        await using (var store = await OpenAsync())
        {
            for (var i = 0; i < 100; i++)
            {
                Assert.Equal(BookieStatus.Ok, await AddAsync(store, 7, i, "entry-" + i, lac: i - 1));
            }

            Assert.Equal("entry-42", await ReadAsync(store, 7, 42));
            Assert.Equal(new LedgerSummary(BookieStatus.Ok, 98, 99, false), store.ReadLac(7));
        }

        await using var reopened = await OpenAsync();
        Assert.Equal("entry-99", await ReadAsync(reopened, 7, 99));
        Assert.Equal(new LedgerSummary(BookieStatus.Ok, 98, 99, false), reopened.ReadLac(7));
        using var missing = await reopened.ReadAsync(7, 100);
        Assert.Equal(BookieStatus.NoSuchEntry, missing.Status);
        using var unknown = await reopened.ReadAsync(8, 0);
        Assert.Equal(BookieStatus.NoSuchLedger, unknown.Status);
    }

    [Fact]
    public async Task A_payload_that_does_not_match_its_crc_is_refused()
    {
        await using var store = await OpenAsync();
        var bytes = "payload"u8.ToArray();
        Assert.Equal(BookieStatus.Invalid, await store.AddAsync(1, 0, -1, Crc32C.Compute(bytes) ^ 1, false, new ReadOnlySequence<byte>(bytes)));
        using var read = await store.ReadAsync(1, 0);
        Assert.NotEqual(BookieStatus.Ok, read.Status);
    }

    [Fact]
    public async Task Fencing_refuses_later_adds_but_not_recovery_adds_and_survives_a_restart()
    {
        await using (var store = await OpenAsync())
        {
            await AddAsync(store, 3, 0, "a");
            await AddAsync(store, 3, 1, "b", lac: 0);
            var fenced = await store.FenceAsync(3);
            Assert.Equal(new LedgerSummary(BookieStatus.Ok, 0, 1, true), fenced);
            Assert.Equal(BookieStatus.Fenced, await AddAsync(store, 3, 2, "zombie"));
            Assert.Equal(BookieStatus.Ok, await AddAsync(store, 3, 2, "recovered", recovery: true));
            Assert.Equal(BookieStatus.Ok, await AddAsync(store, 4, 0, "other ledgers are unaffected"));
        }

        await using var reopened = await OpenAsync();
        Assert.True(reopened.ReadLac(3).Fenced);
        Assert.Equal(BookieStatus.Fenced, await AddAsync(reopened, 3, 3, "zombie after restart"));
        Assert.Equal("recovered", await ReadAsync(reopened, 3, 2));
    }

    [Fact]
    public async Task Deleted_ledgers_are_gone_and_stay_gone()
    {
        await using (var store = await OpenAsync())
        {
            await AddAsync(store, 5, 0, "doomed");
            Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(5));
            Assert.Null(await ReadAsync(store, 5, 0));
            Assert.Equal(BookieStatus.NoSuchLedger, await AddAsync(store, 5, 1, "resurrection"));
        }

        await using var reopened = await OpenAsync();
        Assert.Null(await ReadAsync(reopened, 5, 0));
        Assert.Equal(0, reopened.LedgerCount);
    }

    [Fact]
    public async Task Flipped_bytes_in_the_journal_are_detected_and_never_served()
    {
        const string Marker = "precious-entry-payload-0123456789";
        await using (var store = await OpenAsync())
        {
            await AddAsync(store, 9, 0, "before");
            await AddAsync(store, 9, 1, Marker);
            await AddAsync(store, 9, 2, "after");
        }

        FlipByteOf(Marker);
        await using var reopened = await OpenAsync();
        using var corrupt = await reopened.ReadAsync(9, 1);
        Assert.Equal(BookieStatus.Corrupt, corrupt.Status);
        Assert.Contains("checksum", corrupt.Message);
        Assert.Equal("before", await ReadAsync(reopened, 9, 0));
        Assert.Equal("after", await ReadAsync(reopened, 9, 2));
    }

    [Fact]
    public async Task Deleted_ledgers_space_is_reclaimed_and_live_records_are_moved_out_of_the_way()
    {
        var payload = new string('x', 64 * 1024);
        await using (var store = await OpenAsync(segmentBits: 20))
        {
            // A long-lived ledger's entry pins the first journal file; a churning ledger fills several files.
            await AddAsync(store, 1, 0, "long-lived");
            await store.FenceAsync(1);
            for (var i = 0; i < 96; i++)
            {
                await AddAsync(store, 2, i, payload);
            }

            var before = store.JournalBytes;
            await store.DeleteAsync(2);
            await store.CollectGarbageAsync();
            await store.CollectGarbageAsync();
            Assert.True(store.JournalBytes < before / 2, $"The journal still holds {store.JournalBytes} of {before} bytes.");
            Assert.Equal("long-lived", await ReadAsync(store, 1, 0));
        }

        await using var reopened = await OpenAsync(segmentBits: 20);
        Assert.Equal("long-lived", await ReadAsync(reopened, 1, 0));
        Assert.True(reopened.ReadLac(1).Fenced);
        Assert.Null(await ReadAsync(reopened, 2, 5));
    }

    [Fact]
    public async Task Stopping_during_a_garbage_collection_that_moves_records_does_not_hang_or_lose_them()
    {
        var filler = new string('y', 64 * 1024);
        var store = await OpenAsync(segmentBits: 20);

        // Many live entries in the first journal file, then enough churn that the collector moves them all.
        for (var i = 0; i < 600; i++)
        {
            await AddAsync(store, 1, i, "live-" + i + new string('l', 1000));
        }

        for (var i = 0; i < 64; i++)
        {
            await AddAsync(store, 2, i, filler);
        }

        await store.DeleteAsync(2);
        var collecting = store.CollectGarbageAsync();
        await store.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)); // a TimeoutException is the hang
        try
        {
            await collecting.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (OperationCanceledException)
        {
            // The collection was cut short by the stop: what it had not moved yet stays where it was.
        }

        await using var reopened = await OpenAsync(segmentBits: 20);
        for (var i = 0; i < 600; i++)
        {
            Assert.Equal("live-" + i + new string('l', 1000), await ReadAsync(reopened, 1, i));
        }
    }

    [Fact]
    public async Task Concurrent_adds_share_commits_and_all_complete()
    {
        await using var store = await OpenAsync();
        var adds = Enumerable.Range(0, 2000).Select(i => AddAsync(store, i % 10, i / 10, "concurrent-" + i)).ToList();
        Assert.All(await Task.WhenAll(adds), s => Assert.Equal(BookieStatus.Ok, s));
        Assert.Equal("concurrent-1234", await ReadAsync(store, 4, 123));
    }

    private void FlipByteOf(string marker)
    {
        var needle = Encoding.UTF8.GetBytes(marker);
        foreach (var file in Directory.EnumerateFiles(_dir.Path, "journal.*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            var at = bytes.AsSpan().IndexOf(needle);
            if (at >= 0)
            {
                bytes[at + 10] ^= 0xFF;
                File.WriteAllBytes(file, bytes);
                return;
            }
        }

        throw new InvalidOperationException("The marker was not found in any journal file.");
    }
}
