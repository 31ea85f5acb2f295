using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using Streams.Bookie.Storage;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Tests.Storage;

/// <summary>
/// Power cuts under the journal (<see cref="PowerCutDisk"/>): whatever was not durable is lost, so an add that was
/// acknowledged before the fsync covering it shows up as a missing entry after the store is reopened.
/// </summary>
public sealed class BookieStorePowerCutTests : IDisposable
{
    /// <summary>Journal files of 1 MiB, so new files are created (and old ones removed) many times a round.</summary>
    private const int SegmentBits = 20;

    private readonly BookieStoreDirectory _dir = new("bookie-power");

    public void Dispose() => _dir.Dispose();

    private string JournalDirectory => _dir.JournalDirectory;

    private Task<BookieStore> OpenAsync(IJournalDisk disk) => _dir.OpenAsync(disk, SegmentBits);

    /// <summary>The payload of an entry, a function of its ids (so nothing needs to be kept to check it).</summary>
    private static byte[] PayloadOf(long ledger, long entry, int maxLength = 6000)
    {
        var random = new Random(HashCode.Combine(ledger, entry));
        var payload = new byte[16 + random.Next(maxLength)];
        random.NextBytes(payload);
        return payload;
    }

    private static Task<BookieStatus> AddAsync(BookieStore store, long ledger, long entry, byte[] payload) =>
        BookieStoreDirectory.AddAsync(store, ledger, entry, payload, lac: entry - 1);

    [Fact]
    public async Task Every_acknowledged_add_survives_power_cuts_at_random_moments_under_concurrent_load()
    {
        const int Rounds = 6;
        const int Writers = 6;
        const int Window = 8; // adds in flight per ledger, as the ledger client pipelines them
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var acked = new ConcurrentDictionary<(long Ledger, long Entry), bool>();
        var unacked = new ConcurrentDictionary<(long Ledger, long Entry), bool>(); // issued, not acknowledged before the cut
        var deleted = new ConcurrentBag<long>();
        var report = new List<string>();
        var lost = 0;

        for (var round = 0; round < Rounds; round++)
        {
            var disk = new PowerCutDisk(seed + round, maxDelay: TimeSpan.FromMilliseconds(3));
            var store = await OpenAsync(disk);
            try
            {
                await AssertAllThereAsync(store, acked, deleted, $"seed {seed}, after {round} power cuts");
                lost += await CountMissingAsync(store, unacked);
                unacked.Clear();

                var load = new List<Task>();
                for (var w = 0; w < Writers; w++)
                {
                    var ledger = (round * 100) + w;
                    load.Add(Task.Run(() => WriteLedgerAsync(store, disk, ledger, Window, acked, unacked), TestContext.Current.CancellationToken));
                }

                var churn = (round * 100) + 99;
                load.Add(Task.Run(() => ChurnAsync(store, disk, churn, acked, deleted), TestContext.Current.CancellationToken));
                var started = acked.Count;
                for (var wait = 0; wait < 500 && acked.Count == started; wait++)
                {
                    await Task.Delay(10, TestContext.Current.CancellationToken); // the first round also warms up
                }

                await Task.Delay(random.Next(10, 300), TestContext.Current.CancellationToken);
                var before = acked.Count;
                disk.Cut();
                await WithinAsync(Task.WhenAll(load), "The load did not stop after the power cut.");
                report.Add(string.Create(CultureInfo.InvariantCulture, $"{before} acked, {unacked.Count} in flight, {disk.DroppedWrites} writes dropped, {disk.LostFiles.Count} unnamed files lost"));
            }
            finally
            {
                await WithinAsync(store.DisposeAsync().AsTask(), "The store did not stop after the power cut.");
            }
        }

        await using (var reopened = await OpenAsync(LocalJournalDisk.Instance))
        {
            await AssertAllThereAsync(reopened, acked, deleted, $"seed {seed}, after {Rounds} power cuts");
            lost += await CountMissingAsync(reopened, unacked);
        }

        // The cuts must have lost adds that were in flight: had those been acknowledged early, the test would fail.
        TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed}: {lost} unacknowledged adds lost; " + string.Join("; ", report));
        Assert.True(acked.Count > 200, $"Only {acked.Count} adds were acknowledged: the load did not run.");
        Assert.True(lost > 0, "No cut lost an add in flight: the test proved nothing.");
    }

    [Fact]
    public async Task New_and_removed_journal_files_are_named_durably_before_an_add_is_acknowledged()
    {
        var disk = new PowerCutDisk(1, TimeSpan.Zero);
        await using var store = await OpenAsync(disk);
        var commitDirectory = Path.Combine(JournalDirectory, "commits", "log-commits");
        Assert.Contains(_dir.Path, disk.Syncs); // the journal directory itself was created durably
        Assert.Contains(Path.Combine(JournalDirectory, "commits"), disk.Syncs);

        // 40 entries of 64 KiB: four journal files of 1 MiB, each created by FASTER's device on its first write.
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(BookieStatus.Ok, await AddAsync(store, 2, i, new byte[64 * 1024]));
            Assert.Empty(disk.UnnamedFiles); // acknowledged means: in files whose names are durable too
        }

        var files = Directory.GetFiles(JournalDirectory, "journal.*").OrderBy(f => int.Parse(Path.GetExtension(f)[1..], CultureInfo.InvariantCulture)).ToArray();
        Assert.True(files.Length >= 3, $"Only {files.Length} journal files.");
        var journalSyncs = disk.Syncs.Count(d => d == JournalDirectory);
        Assert.True(journalSyncs >= files.Length, $"{journalSyncs} fsyncs of the journal directory for {files.Length} files.");
        Assert.Contains(commitDirectory, disk.Syncs); // FASTER's commit metadata files

        // Removal: the collector moves the begin address to the tail; FASTER deletes the files before the tail's at the
        // next commit, and each removal is followed by an fsync of the directory.
        Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(2));
        await store.CollectGarbageAsync();
        Assert.Equal(BookieStatus.Ok, await AddAsync(store, 3, 0, PayloadOf(3, 0)));
        var removed = files[..^1];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (removed.Any(File.Exists) || disk.Syncs.Count(d => d == JournalDirectory) < journalSyncs + removed.Length)
        {
            Assert.True(DateTime.UtcNow < deadline, $"Journal files still there: {string.Join(", ", removed.Where(File.Exists))}; {disk.Syncs.Count(d => d == JournalDirectory) - journalSyncs} fsyncs since.");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task The_journal_files_are_written_with_O_SYNC()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "Reads /proc/self/fdinfo.");
        await using var store = await OpenAsync(LocalJournalDisk.Instance);
        Assert.Equal(BookieStatus.Ok, await AddAsync(store, 1, 0, PayloadOf(1, 0)));

        // The power-cut disk trusts a completed write to be on disk; that holds only if the device opens with O_SYNC.
        const int AccessMode = 3, ReadOnly = 0, Sync = 0x101000; // O_ACCMODE, O_RDONLY, O_SYNC (__O_SYNC | O_DSYNC)
        var writers = 0;
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target is null || !target.StartsWith(Path.Combine(JournalDirectory, "journal."), StringComparison.Ordinal))
            {
                continue;
            }

            var flagsLine = File.ReadLines($"/proc/self/fdinfo/{Path.GetFileName(fd)}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
            var flags = Convert.ToInt32(flagsLine["flags:".Length..].Trim(), 8);
            if ((flags & AccessMode) != ReadOnly)
            {
                writers++;
                Assert.True((flags & Sync) == Sync, $"{target} is open for writing without O_SYNC (flags {flagsLine}).");
            }
        }

        Assert.True(writers > 0, "No journal file is open for writing.");
    }

    private static async Task WithinAsync(Task task, string hang)
    {
        if (await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken)) != task)
        {
            Assert.Fail(hang);
        }

        await task;
    }

    private static async Task WriteLedgerAsync(BookieStore store, PowerCutDisk disk, long ledger, int window, ConcurrentDictionary<(long, long), bool> acked, ConcurrentDictionary<(long, long), bool> unacked)
    {
        using var slots = new SemaphoreSlim(window);
        var adds = new List<Task>();
        var refused = false;
        for (long entry = 0; entry < 100_000 && !refused && !disk.IsOff; entry++)
        {
            await slots.WaitAsync();
            adds.Add(AddOneAsync(entry));
        }

        await Task.WhenAll(adds);

        async Task AddOneAsync(long entry)
        {
            try
            {
                unacked[(ledger, entry)] = true;
                var status = await AddAsync(store, ledger, entry, PayloadOf(ledger, entry));
                if (status != BookieStatus.Ok)
                {
                    refused = true;
                }
                else if (!disk.IsOff)
                {
                    acked[(ledger, entry)] = true; // acknowledged while the power was on: must survive
                    unacked.TryRemove((ledger, entry), out _);
                }
            }
            finally
            {
                slots.Release();
            }
        }
    }

    /// <summary>Fills a ledger with large entries, deletes it and collects garbage, over and over: files come and go.</summary>
    private static async Task ChurnAsync(BookieStore store, PowerCutDisk disk, long firstLedger, ConcurrentDictionary<(long, long), bool> acked, ConcurrentBag<long> deleted)
    {
        for (var ledger = firstLedger * 1000; ledger < (firstLedger * 1000) + 100 && !disk.IsOff; ledger++)
        {
            for (var entry = 0; entry < 24; entry++)
            {
                var status = await AddAsync(store, ledger, entry, PayloadOf(ledger, entry, maxLength: 64 * 1024));
                if (status != BookieStatus.Ok)
                {
                    return;
                }

                if (!disk.IsOff)
                {
                    acked[(ledger, entry)] = true;
                }
            }

            for (var entry = 0; entry < 24; entry++)
            {
                acked.TryRemove((ledger, entry), out _); // from here on the ledger may or may not be there
            }

            if (await store.DeleteAsync(ledger) != BookieStatus.Ok)
            {
                return;
            }

            if (!disk.IsOff)
            {
                deleted.Add(ledger); // acknowledged delete: its entries must never be served again
            }

            await store.CollectGarbageAsync();
        }
    }

    private static async Task<int> CountMissingAsync(BookieStore store, ConcurrentDictionary<(long Ledger, long Entry), bool> entries)
    {
        var missing = 0;
        foreach (var (ledger, entry) in entries.Keys)
        {
            using var read = await store.ReadAsync(ledger, entry);
            missing += read.Status == BookieStatus.Ok ? 0 : 1;
        }

        return missing;
    }

    private static async Task AssertAllThereAsync(BookieStore store, ConcurrentDictionary<(long Ledger, long Entry), bool> acked, ConcurrentBag<long> deleted, string when)
    {
        foreach (var (ledger, entry) in acked.Keys.Order())
        {
            using var read = await store.ReadAsync(ledger, entry);
            Assert.True(read.Status == BookieStatus.Ok, $"Acknowledged entry {ledger}:{entry} is {read.Status} ({read.Message}), {when}.");
            var expected = PayloadOf(ledger, entry, maxLength: ledger >= 1000 ? 64 * 1024 : 6000);
            Assert.True(read.Payload.Span.SequenceEqual(expected), $"Acknowledged entry {ledger}:{entry} reads back different bytes, {when}.");
            Assert.Equal(Crc32C.Compute(expected), read.Crc);
        }

        foreach (var ledger in deleted)
        {
            using var read = await store.ReadAsync(ledger, 0);
            Assert.True(read.Status == BookieStatus.NoSuchLedger, $"Deleted ledger {ledger} answers {read.Status}, {when}.");
        }
    }
}
