using Streams.SegmentStore.Containers;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>The storage writer (StorageWriter.cs) on a real filesystem Tier 2, over an in-memory log: flushes, checkpoints, truncation, the orphan sweep and the Tier 1 budget.</summary>
public sealed class StorageWriterTests() : FileTier2Tests("storage-writer")
{
    [Fact]
    public async Task Data_moves_to_tier2_the_log_is_truncated_and_reads_come_back_from_chunks()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithEventsInTier2Async(Tier2, log);
        var chunks = await ListChunksAsync(Tier2, "containers/0/");
        Assert.True(chunks.Count >= 15, $"~1 MiB in 64 KiB chunks, found {chunks.Count}");

        // The frame cache holds 128 KiB, the log lost its head: most of the segment comes back from Tier 2.
        Assert.Equal(Enumerable.Range(0, 1000).Select(n => (long)n), await ReadEventNumbersAsync(container));
        Assert.True(Tier2.Reads > 0);
    }

    [Fact]
    public async Task Chunks_no_segment_references_are_swept_and_referenced_ones_stay()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options());
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        await AppendEventsAsync(container, 0, 300);
        await WaitUntilAsync(() => container.UnflushedBytes == 0, "everything is in Tier 2");

        // What a crashed or fenced owner leaves behind: chunks under this container that no segment references.
        await Tier2.WriteAsync("containers/0/segments/1/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        await Tier2.WriteAsync("containers/0/segments/77/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        await Tier2.WriteAsync("containers/1/segments/1/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        var referenced = await ListChunksAsync(Tier2, "containers/0/");

        Assert.Equal(2, await container.SweepOrphansAsync(TestContext.Current.CancellationToken));
        Assert.Equal(referenced.Count - 2, (await ListChunksAsync(Tier2, "containers/0/")).Count);
        Assert.Single(await ListChunksAsync(Tier2, "containers/1/")); // another container's
        Assert.Equal(Enumerable.Range(0, 300).Select(n => (long)n), await ReadEventNumbersAsync(container));
    }

    [Fact]
    public async Task The_sweep_deletes_only_older_owners_orphans_and_nothing_once_the_log_is_someone_elses()
    {
        var log = new InMemoryDurableDataLog { Epoch = 3 };
        await using var container = Create(log, Options());
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        await AppendEventsAsync(container, 0, 300);
        await WaitUntilAsync(() => container.UnflushedBytes == 0, "everything is in Tier 2");
        Assert.All(await ListChunksAsync(Tier2, "containers/0/"), name => Assert.EndsWith(".e3", name, StringComparison.Ordinal));

        var ct = TestContext.Current.CancellationToken;
        await Tier2.WriteAsync("containers/0/segments/9/0000000000000000000.e2", new byte[10], ct); // a fenced predecessor's
        await Tier2.WriteAsync("containers/0/segments/9/0000000000000000010.0ldowner0000", new byte[10], ct); // named before epochs
        await Tier2.WriteAsync("containers/0/segments/9/0000000000000000020.e3", new byte[10], ct); // this owner's, being recorded
        await Tier2.WriteAsync("containers/0/segments/9/0000000000000000030.e4", new byte[10], ct); // a newer owner's: this one is a zombie
        var checks = log.OwnershipChecks;
        Assert.Equal(2, await container.SweepOrphansAsync(ct));
        Assert.Equal(["containers/0/segments/9/0000000000000000020.e3", "containers/0/segments/9/0000000000000000030.e4"], (await ListChunksAsync(Tier2, "containers/0/segments/9/")).Order());
        Assert.True(log.OwnershipChecks >= checks + 2, "Every delete confirms ownership first.");

        // Taken over: whatever its stale view says, it deletes nothing.
        log.TakenOver = true;
        await Tier2.WriteAsync("containers/0/segments/9/0000000000000000040.e1", new byte[10], ct);
        await Assert.ThrowsAsync<InvalidOperationException>(() => container.SweepOrphansAsync(ct));
        Assert.Equal(3, (await ListChunksAsync(Tier2, "containers/0/segments/9/")).Count);
        Assert.Equal(Enumerable.Range(0, 300).Select(n => (long)n), await ReadEventNumbersAsync(container));
    }

    [Fact]
    public async Task Writers_idle_past_the_expiry_are_forgotten_at_a_checkpoint_and_after_recovery_active_ones_are_not()
    {
        var idle = Guid.Parse("bbbbbbbb-0000-0000-0000-000000000002");
        var log = new InMemoryDurableDataLog();
        var options = Options(writerExpiry: TimeSpan.FromSeconds(3)); // the busy writer's last checkpoint comes well within it
        await using (var first = Create(log, options))
        {
            await first.StartAsync();
            Assert.True((await first.CreateSegmentAsync(Segment)).IsSuccess);
            await AppendEventsAsync(first, 0, 10, idle);
            Assert.Equal(9, await LastEventNumberAsync(first, idle));
            await Task.Delay(3500);

            await AppendEventsAsync(first, 10, 600); // several checkpoints and truncations
            await WaitUntilAsync(() => first.UnflushedBytes == 0 && log.Begin > 0, "the log is truncated");
            Assert.Equal(-1, await LastEventNumberAsync(first, idle));
            Assert.Equal(609, await LastEventNumberAsync(first, Writer));
        }

        var restarted = new InMemoryDurableDataLog(log.Records) { Begin = log.Begin };
        await using var second = Create(restarted, options);
        await second.StartAsync();
        Assert.Equal(-1, await LastEventNumberAsync(second, idle));
        Assert.Equal(609, await LastEventNumberAsync(second, Writer));
        Assert.Equal(610, (await ReadEventNumbersAsync(second)).Count);
    }

    [Fact]
    public async Task Sealing_flushes_at_once_and_truncation_and_deletion_remove_chunks()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options(flushAge: TimeSpan.FromMinutes(5)));
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        await AppendEventsAsync(container, 0, 100); // ~100 KiB: one whole chunk, the rest waits for its age
        await WaitUntilAsync(() => container.UnflushedBytes < 64 * 1024, "a whole chunk is flushed");
        Assert.True(container.UnflushedBytes > 0);

        Assert.True((await container.SealSegmentAsync(Segment)).IsSuccess);
        await WaitUntilAsync(() => container.UnflushedBytes == 0, "the sealed segment is flushed");
        Assert.Equal(2, (await ListChunksAsync(Tier2, "containers/0/")).Count);

        var length = container.GetInfo(Segment)!.Length;
        Assert.True((await container.TruncateSegmentAsync(Segment, length - 10)).IsSuccess);
        await WaitUntilAsync(() => ListChunksAsync(Tier2, "containers/0/").Result.Count == 1, "the first chunk is deleted");

        Assert.True((await container.DeleteSegmentAsync(Segment)).IsSuccess);
        await WaitUntilAsync(() => ListChunksAsync(Tier2, "containers/0/").Result.Count == 0, "every chunk is deleted");
    }

    [Fact]
    public async Task While_tier2_is_down_appends_fill_the_budget_then_wait_and_finish_when_it_returns()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options(budget: 256 * 1024));
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        Tier2.Down = true;

        await AppendEventsAsync(container, 0, 240); // under the 256 KiB budget: acknowledged
        var waiting = AppendEventsAsync(container, 240, 60);
        await Task.Delay(1000);
        Assert.False(waiting.IsCompleted, "appends beyond the budget wait for Tier 2");
        Assert.True(container.Tier2Failing);

        Tier2.Down = false;
        await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        await WaitUntilAsync(() => container.UnflushedBytes == 0, "Tier 2 caught up");
        Assert.Equal(Enumerable.Range(0, 300).Select(n => (long)n), await ReadEventNumbersAsync(container));
    }

    [Fact]
    public async Task Appends_are_refused_with_retry_when_the_budget_stays_full_past_its_timeout()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options(budget: 128 * 1024, budgetTimeout: TimeSpan.FromMilliseconds(500)));
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        Tier2.Down = true;
        await AppendEventsAsync(container, 0, 126);

        OperationOutcome outcome = default;
        for (var n = 126; n < 200 && (outcome = await container.AppendAsync(Segment, Writer, n, 1, null, Event(n))).IsSuccess; n++)
        {
        }

        Assert.Equal(OutcomeStatus.ContainerUnavailable, outcome.Status);
        Assert.Contains("Tier 2", outcome.Message, StringComparison.Ordinal);
    }
}
