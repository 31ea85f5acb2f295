using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Testing;

namespace Streams.Bookie.Tests.Storage;

/// <summary>I/O errors that FASTER passes over: the bookie stops acknowledging instead.</summary>
public sealed class BookieStoreDiskFailureTests : IDisposable
{
    private readonly TempDirectory _dir = new("bookie-eio");

    public void Dispose() => _dir.Dispose();

    private Task<BookieStore> OpenAsync(IJournalDisk disk) =>
        BookieStore.OpenAsync(new BookieOptions { DataDirectory = _dir.Path, JournalSegmentSize = new ByteSize(1L << 20), MaxEntrySize = ByteSize.KiB(512), GcInterval = TimeSpan.FromHours(1) }, NullLogger.Instance, disk);

    private static Task<BookieStatus> AddAsync(BookieStore store, long ledger, long entry, byte[] payload) =>
        store.AddAsync(ledger, entry, -1, Crc32C.Compute(payload), false, new ReadOnlySequence<byte>(payload));

    [Fact]
    public async Task A_failed_commit_metadata_write_is_never_acknowledged_and_deletes_no_journal_file()
    {
        var disk = new FailingCommitFilesDisk();
        var journal = Path.Combine(_dir.Path, "journal");
        await using (var store = await OpenAsync(disk))
        {
            for (var i = 0; i < 40; i++)
            {
                Assert.Equal(BookieStatus.Ok, await AddAsync(store, 2, i, new byte[64 * 1024]));
            }

            Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(2));
            await store.CollectGarbageAsync();
            var files = Directory.GetFiles(journal, "journal.*");

            // The next commit writes metadata naming the new begin (FASTER then deletes the files before it): it fails.
            disk.Failing = true;
            Assert.Equal(BookieStatus.Unavailable, await AddAsync(store, 3, 0, [1, 2, 3]));
            Assert.True(disk.FailedWrites > 0, "No commit metadata was written.");
            Assert.False(store.IsHealthy);
            Assert.Equal(BookieStatus.Unavailable, await AddAsync(store, 3, 1, [4]));
            await Task.Delay(200, TestContext.Current.CancellationToken); // FASTER's deletions run after the epoch moves on
            Assert.All(files, f => Assert.True(File.Exists(f), $"{f} was deleted after a failed metadata write."));
        }

        disk.Failing = false;
        await using var reopened = await OpenAsync(disk);
        using var read = await reopened.ReadAsync(2, 0);
        Assert.Equal(BookieStatus.NoSuchLedger, read.Status);
        Assert.Equal(BookieStatus.Ok, await AddAsync(reopened, 4, 0, [5]));
    }
}
