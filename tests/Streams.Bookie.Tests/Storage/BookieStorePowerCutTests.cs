using System.Buffers;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie.Storage;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Testing;

namespace Streams.Bookie.Tests.Storage;

/// <summary>
/// Power cuts under the journal (<see cref="PowerCutDisk"/>): whatever was not durable is lost, so an add that was
/// acknowledged before the fsync covering it shows up as a missing entry after the store is reopened.
/// </summary>
public sealed class BookieStorePowerCutTests : IDisposable
{
    /// <summary>Journal files of 1 MiB, so new files are created (and old ones removed) many times a round.</summary>
    private const int SegmentBits = 20;

    private readonly TempDirectory _dir = new("bookie-power");

    public void Dispose() => _dir.Dispose();

    private string JournalDirectory => Path.Combine(_dir.Path, "journal");

    private Task<BookieStore> OpenAsync(IJournalDisk disk) =>
        BookieStore.OpenAsync(new BookieOptions { DataDirectory = _dir.Path, JournalSegmentSizeBits = SegmentBits, MaxEntrySize = 512 * 1024, GcInterval = TimeSpan.FromHours(1) }, NullLogger.Instance, disk);

    /// <summary>The payload of an entry, a function of its ids (so nothing needs to be kept to check it).</summary>
    private static byte[] PayloadOf(long ledger, long entry, int maxLength = 6000)
    {
        var random = new Random(HashCode.Combine(ledger, entry));
        var payload = new byte[16 + random.Next(maxLength)];
        random.NextBytes(payload);
        return payload;
    }

    private static Task<BookieStatus> AddAsync(BookieStore store, long ledger, long entry, byte[] payload) =>
        store.AddAsync(ledger, entry, entry - 1, Crc32C.Compute(payload), false, new ReadOnlySequence<byte>(payload));

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

}
