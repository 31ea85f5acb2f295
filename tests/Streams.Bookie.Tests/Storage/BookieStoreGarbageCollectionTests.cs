using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Streams.Contracts.Bookie;
using Streams.Testing;

namespace Streams.Bookie.Tests.Storage;

/// <summary>Journal garbage collection: a failing pass is retried and reported; deleted ledgers are not remembered forever.</summary>
public sealed class BookieStoreGarbageCollectionTests : IDisposable
{
    private readonly BookieStoreDirectory _dir = new("bookie-gc");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_failing_collection_is_counted_degrades_readiness_and_is_retried_until_it_succeeds()
    {
        var disk = new ControllableDisk();
        long failuresCounted = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == BookieMetrics.MeterName && instrument.Name == "streams.bookie.journal.gc.failures")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref failuresCounted, value));
        listener.Start();

        await using var store = await _dir.OpenAsync(disk, o => o with { GcInterval = TimeSpan.FromMilliseconds(100) });
        disk.FailReads = true;

        // A live entry pins the first journal file; a deleted ledger fills several more: collection must move the live
        // entry, and reading it fails while the disk's reads do.
        Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 1, 0, "long-lived"u8.ToArray()));
        for (var i = 0; i < 96; i++)
        {
            Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 2, i, new byte[64 * 1024]));
        }

        var before = store.JournalBytes;
        Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(2));
        await WaitUntilAsync(() => store.GarbageCollectionFailures >= 2, "collection to fail twice");
        Assert.True(Interlocked.Read(ref failuresCounted) >= 2, $"The failure counter shows {failuresCounted}.");
        var health = store.CheckHealth("bookie");
        Assert.Equal(HealthStatus.Degraded, health.Status);
        Assert.Contains("garbage collection failed", health.Description);
        Assert.True(store.IsHealthy, "A failing collection must not stop the journal from taking writes.");
        Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 3, 0, [1]));

        disk.FailReads = false;
        await WaitUntilAsync(() => store.GarbageCollectionFailures == 0 && store.JournalBytes < before / 2, "collection to succeed again");
        Assert.Equal(HealthStatus.Healthy, store.CheckHealth("bookie").Status);
        using var read = await store.ReadAsync(1, 0, TestContext.Current.CancellationToken);
        Assert.Equal("long-lived"u8.ToArray(), read.Payload.ToArray());
    }

    [Fact]
    public async Task Deleted_ledgers_are_forgotten_once_the_journal_no_longer_holds_their_delete_records()
    {
        await using (var store = await _dir.OpenAsync())
        {
            for (var i = 0; i < 100; i++)
            {
                Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 100 + i, 0, new byte[16 * 1024]));
                Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(100 + i));
            }

            Assert.Equal(100, store.DeletedLedgerCount);
            await store.CollectGarbageAsync();
            Assert.Equal(0, store.DeletedLedgerCount);

            // A ledger deleted after the collection is still remembered, and refused.
            Assert.Equal(BookieStatus.Ok, await BookieStoreDirectory.AddAsync(store, 500, 0, [1]));
            Assert.Equal(BookieStatus.Ok, await store.DeleteAsync(500));
            Assert.Equal(1, store.DeletedLedgerCount);
            Assert.Equal(BookieStatus.NoSuchLedger, await BookieStoreDirectory.AddAsync(store, 500, 1, [2]));
            Assert.Equal(BookieStatus.NoSuchLedger, store.ReadLac(500).Status);
        }

        // A restart remembers what the journal holds: the same set.
        await using var reopened = await _dir.OpenAsync();
        Assert.Equal(1, reopened.DeletedLedgerCount);
        Assert.Equal(0, reopened.LedgerCount);
        Assert.Equal(BookieStatus.NoSuchLedger, await BookieStoreDirectory.AddAsync(reopened, 500, 1, [2]));
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) =>
        Waiting.UntilAsync(condition, what, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken);
}
