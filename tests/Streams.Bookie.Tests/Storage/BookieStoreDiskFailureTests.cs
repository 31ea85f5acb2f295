using Streams.Contracts.Bookie;

namespace Streams.Bookie.Tests.Storage;

/// <summary>I/O errors that FASTER passes over: the bookie stops acknowledging instead.</summary>
public sealed class BookieStoreDiskFailureTests : IDisposable
{
    private readonly BookieStoreDirectory _dir = new("bookie-eio");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_failed_commit_metadata_write_is_never_acknowledged_and_deletes_no_journal_file()
    {
        var disk = new FailingCommitFilesDisk();
        var journal = _dir.JournalDirectory;
        await using (var store = await _dir.OpenAsync(disk))
        {
            for (var i = 0; i < 40; i++)
            {
                Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 2, i, new byte[64 * 1024]));
            }

            Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(2));
            await store.CollectGarbageAsync();
            var files = Directory.GetFiles(journal, "journal.*");

            // The next commit writes metadata naming the new begin (FASTER then deletes the files before it): it fails.
            disk.Failing = true;
            Assert.Equal(BookieStatus.Unavailable, await BookieStoreDirectory.AddAsync(store, 3, 0, [1, 2, 3]));
            Assert.True(disk.FailedWrites > 0, "No commit metadata was written.");
            Assert.False(store.IsHealthy);
            Assert.Equal(BookieStatus.Unavailable, await BookieStoreDirectory.AddAsync(store, 3, 1, [4]));
            await Task.Delay(200, TestContext.Current.CancellationToken); // FASTER's deletions run after the epoch moves on
            Assert.All(files, f => Assert.True(File.Exists(f), $"{f} was deleted after a failed metadata write."));
        }

        disk.Failing = false;
        await using var reopened = await _dir.OpenAsync(disk);
        using var read = await reopened.ReadAsync(2, 0);
        Assert.Equal(BookieStatus.NoSuchLedger, read.Status);
        Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(reopened, 4, 0, [5]));
    }
}
