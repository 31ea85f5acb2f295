using System.Diagnostics;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Tests.Storage;

/// <summary>A journal whose memory is full (its disk is slow): callers are not blocked, and order and content hold.</summary>
public sealed class BookieStoreJournalFullTests : IDisposable
{
    /// <summary>Journal files of 1 MiB: pages of 1 MiB, two of them in memory.</summary>
    private const int SegmentBits = 20;

    private const int EntrySize = 256 * 1024;

    private readonly BookieStoreDirectory _dir = new("bookie-full");

    public void Dispose() => _dir.Dispose();

    private static byte[] Payload(int entry)
    {
        var bytes = new byte[EntrySize];
        new Random(entry).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task Adds_to_a_full_journal_return_at_once_and_complete_in_order_once_the_disk_catches_up()
    {
        var disk = new ControllableDisk();
        await using var store = await _dir.OpenAsync(disk, SegmentBits);
        disk.HoldWrites();

        // 6 MiB of adds into 2 MiB of journal memory whose flushes cannot complete: each call must still return at once
        // (a task, not a blocked thread), and nothing may be acknowledged.
        const int Count = 24;
        var started = Stopwatch.GetTimestamp();
        var issuing = Task.Run(() => Enumerable.Range(0, Count).Select(i => BookieStoreDirectory.AddAsync(store, 1, i, Payload(i), lac: i - 1)).ToList(),
            TestContext.Current.CancellationToken);
        var adds = await issuing.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken); // a TimeoutException is a blocked caller
        var issued = Stopwatch.GetElapsedTime(started);
        Assert.True(issued < TimeSpan.FromSeconds(5), $"Issuing {Count} adds took {issued}.");
        await Task.Delay(200, TestContext.Current.CancellationToken);
        Assert.All(adds, a => Assert.False(a.IsCompleted, "An add completed while the journal could not write."));

        // A fence behind the waiting adds answers with all of them.
        var fence = store.FenceAsync(1);
        Assert.Equal(BookieStatus.Fenced, await BookieStoreDirectory.AddAsync(store, 1, Count, Payload(Count)));

        disk.ReleaseWrites();
        Assert.All(await Task.WhenAll(adds).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken), s => Assert.Equal(BookieStatus.Ok, s));
        Assert.Equal(new LedgerSummary(BookieStatus.Ok, Count - 2, Count - 1, true), await fence.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        for (var i = 0; i < Count; i++)
        {
            using var read = await store.ReadAsync(1, i, TestContext.Current.CancellationToken);
            Assert.Equal(BookieStatus.Ok, read.Status);
            Assert.True(read.Payload.Span.SequenceEqual(Payload(i)), $"Entry {i} came back different.");
        }
    }

    [Fact]
    public async Task Many_concurrent_large_adds_through_a_small_journal_all_complete_and_survive_a_restart()
    {
        const int Writers = 16;
        const int PerWriter = 16;
        await using (var store = await _dir.OpenAsync(new ControllableDisk(), SegmentBits))
        {
            var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
            {
                for (var i = 0; i < PerWriter; i++)
                {
                    Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 10 + w, i, Payload((w * PerWriter) + i)));
                }
            }));
            await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        }

        await using var reopened = await _dir.OpenAsync(new ControllableDisk(), SegmentBits);
        using var last = await reopened.ReadAsync(10 + Writers - 1, PerWriter - 1, TestContext.Current.CancellationToken);
        Assert.True(last.Payload.Span.SequenceEqual(Payload((Writers * PerWriter) - 1)));
    }
}
