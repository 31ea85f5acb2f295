using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Reading;
using Streams.Testing;
using Streams.Tier2;
using Streams.Tier2.FileSystem;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>The storage writer on a real filesystem Tier 2, over an in-memory log.</summary>
public sealed class StorageWriterTests : IDisposable
{
    private const string Segment = "scope/stream/0.#epoch.0";
    private static readonly Guid Writer = Guid.Parse("aaaaaaaa-0000-0000-0000-000000000001");
    private readonly TempDirectory _dir = new("storage-writer");
    private readonly ToggledChunkStorage _tier2;

    public StorageWriterTests()
    {
        _tier2 = new ToggledChunkStorage(new FileChunkStorage(_dir.Sub("tier2")));
    }

    public void Dispose() => _dir.Dispose();

    private static ContainerOptions Options(long budget = 4 << 20, TimeSpan? flushAge = null, TimeSpan? budgetTimeout = null, TimeSpan? writerExpiry = null) => new()
    {
        MaxFrameSize = 64 * 1024,
        WriterExpiry = writerExpiry ?? TimeSpan.FromDays(1),
        Storage = new StorageWriterOptions
        {
            FlushSize = 64 * 1024,
            MaxChunkSize = 64 * 1024,
            FlushAge = flushAge ?? TimeSpan.FromMilliseconds(200),
            CheckpointEvery = 128 * 1024,
            Tier1Budget = budget,
            BudgetTimeout = budgetTimeout ?? TimeSpan.FromMinutes(1),
            MinRetryDelay = TimeSpan.FromMilliseconds(20),
            MaxRetryDelay = TimeSpan.FromMilliseconds(100),
        },
    };

    private SegmentContainer Create(InMemoryDurableDataLog log, ContainerOptions options, long cacheBytes = 128 * 1024) =>
        new(0, log, new FrameCache(cacheBytes), options, NullLogger.Instance, _tier2, new ChunkCache(256 * 1024));

    /// <summary>An event whose payload says its number, padded to about 1 KiB.</summary>
    private static byte[] Event(long number)
    {
        var body = Encoding.UTF8.GetBytes(number.ToString("D8", System.Globalization.CultureInfo.InvariantCulture) + new string('x', 1000));
        var frame = new byte[EventFraming.FrameSize(body.Length)];
        EventFraming.Write(frame, body, default, storeKey: false);
        return frame;
    }

    private static async Task AppendEventsAsync(SegmentContainer container, long from, long count, Guid? writer = null)
    {
        for (var n = from; n < from + count; n++)
        {
            var outcome = await container.AppendAsync(Segment, writer ?? Writer, n, 1, null, Event(n));
            Assert.True(outcome.IsSuccess, outcome.Message);
        }
    }

    private static async Task<List<long>> ReadEventNumbersAsync(SegmentContainer container, long offset = 0, int maxBytes = 0)
    {
        var numbers = new List<long>();
        while (true)
        {
            using var read = await container.ReadAsync(Segment, offset, maxBytes, TimeSpan.Zero);
            Assert.Null(read.Error);
            if (read.Status != ReadStatus.Ok)
            {
                return numbers;
            }

            var data = read.Data;
            while (EventFraming.TryReadEvent(ref data, out var e))
            {
                numbers.Add(long.Parse(Encoding.UTF8.GetString(e.Payload.Slice(0, 8)), System.Globalization.CultureInfo.InvariantCulture));
            }

            offset += read.Data.Length;
        }
    }

    private async Task<List<string>> ListChunksAsync(string prefix)
    {
        var names = new List<string>();
        await foreach (var name in _tier2.ListAsync(prefix, TestContext.Current.CancellationToken))
        {
            names.Add(name);
        }

        return names;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 300 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition(), $"Timed out waiting until {what}.");
    }

    /// <summary>A started container with one segment of 1000 events (~1 MiB), all in Tier 2 and the log truncated.</summary>
    private async Task<SegmentContainer> StartWithEventsInTier2Async(InMemoryDurableDataLog log, long cacheBytes = 128 * 1024)
    {
        var container = Create(log, Options(), cacheBytes);
        try
        {
            await container.StartAsync();
            Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
            await AppendEventsAsync(container, 0, 1000);
            await WaitUntilAsync(() => container.UnflushedBytes == 0 && log.Begin > 0, "everything is in Tier 2 and the log truncated");
            return container;
        }
        catch
        {
            await container.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Data_moves_to_tier2_the_log_is_truncated_and_reads_come_back_from_chunks()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithEventsInTier2Async(log);
        var chunks = await ListChunksAsync("containers/0/");
        Assert.True(chunks.Count >= 15, $"~1 MiB in 64 KiB chunks, found {chunks.Count}");

        // The frame cache holds 128 KiB, the log lost its head: most of the segment comes back from Tier 2.
        Assert.Equal(Enumerable.Range(0, 1000).Select(n => (long)n), await ReadEventNumbersAsync(container));
        Assert.True(_tier2.Reads > 0);
    }

    [Fact]
    public async Task Readers_missing_on_the_same_chunk_at_once_share_one_tier2_read()
    {
        await using var container = await StartWithEventsInTier2Async(new InMemoryDurableDataLog());

        // Eight readers start at the segment's head (long gone from the frame cache and the log) while Tier 2 is slow.
        _tier2.ReadDelay = TimeSpan.FromSeconds(1);
        var before = _tier2.Reads;
        var reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            using var read = await container.ReadAsync(Segment, 0, 4096, TimeSpan.Zero, TestContext.Current.CancellationToken);
            return read.Data.ToArray();
        })));

        Assert.Equal(1, _tier2.Reads - before);
        Assert.All(reads, r => Assert.Equal(reads[0], r));
        Assert.Equal(4096, reads[0].Length);
    }

    [Fact]
    public async Task A_reader_catching_up_from_tier2_does_not_evict_the_tail_that_live_readers_use()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithEventsInTier2Async(log, cacheBytes: 256 * 1024);

        // A live reader at the tail: served from cached frames.
        var tail = container.GetInfo(Segment)!.Length - (16 * 1024);
        using (var read = await container.ReadAsync(Segment, tail, 16 * 1024, TimeSpan.Zero))
        {
            Assert.Equal(16 * 1024, read.Data.Length);
        }

        var logReads = log.Reads;
        var tierReads = _tier2.Reads;
        Assert.Equal(Enumerable.Range(0, 1000).Select(n => (long)n), await ReadEventNumbersAsync(container)); // ~1 MiB through a 256 KiB cache
        Assert.True(_tier2.Reads > tierReads, "the catch-up read came from Tier 2");

        using (var again = await container.ReadAsync(Segment, tail, 16 * 1024, TimeSpan.Zero))
        {
            Assert.Equal(16 * 1024, again.Data.Length);
        }

        Assert.Equal(logReads, log.Reads); // neither the catch-up nor the tail read missed the frame cache
    }

    [Fact]
    public async Task A_damaged_chunk_is_detected_and_never_served()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options());
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        await AppendEventsAsync(container, 0, 500);
        await WaitUntilAsync(() => container.UnflushedBytes == 0 && log.Begin > 0, "everything is in Tier 2 and the log truncated");

        var first = (await ListChunksAsync("containers/0/"))[0];
        var path = Path.Combine(_dir.Sub("tier2"), first);
        var bytes = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        bytes[1234] ^= 0x40;
        await File.WriteAllBytesAsync(path, bytes, TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<DataCorruptionException>(async () =>
        {
            using var read = await container.ReadAsync(Segment, 0, 4096, TimeSpan.Zero);
        });
        Assert.Contains("CRC-32C", error.Message, StringComparison.Ordinal);
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
        await _tier2.WriteAsync("containers/0/segments/1/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        await _tier2.WriteAsync("containers/0/segments/77/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        await _tier2.WriteAsync("containers/1/segments/1/0000000000000000000.0ldowner0000", new byte[100], TestContext.Current.CancellationToken);
        var referenced = await ListChunksAsync("containers/0/");

        Assert.Equal(2, await container.SweepOrphansAsync(TestContext.Current.CancellationToken));
        Assert.Equal(referenced.Count - 2, (await ListChunksAsync("containers/0/")).Count);
        Assert.Single(await ListChunksAsync("containers/1/")); // another container's
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
        Assert.All(await ListChunksAsync("containers/0/"), name => Assert.EndsWith(".e3", name, StringComparison.Ordinal));

        var ct = TestContext.Current.CancellationToken;
        await _tier2.WriteAsync("containers/0/segments/9/0000000000000000000.e2", new byte[10], ct); // a fenced predecessor's
        await _tier2.WriteAsync("containers/0/segments/9/0000000000000000010.0ldowner0000", new byte[10], ct); // named before epochs
        await _tier2.WriteAsync("containers/0/segments/9/0000000000000000020.e3", new byte[10], ct); // this owner's, being recorded
        await _tier2.WriteAsync("containers/0/segments/9/0000000000000000030.e4", new byte[10], ct); // a newer owner's: this one is a zombie
        var checks = log.OwnershipChecks;
        Assert.Equal(2, await container.SweepOrphansAsync(ct));
        Assert.Equal(["containers/0/segments/9/0000000000000000020.e3", "containers/0/segments/9/0000000000000000030.e4"], (await ListChunksAsync("containers/0/segments/9/")).Order());
        Assert.True(log.OwnershipChecks >= checks + 2, "Every delete confirms ownership first.");

        // Taken over: whatever its stale view says, it deletes nothing.
        log.TakenOver = true;
        await _tier2.WriteAsync("containers/0/segments/9/0000000000000000040.e1", new byte[10], ct);
        await Assert.ThrowsAsync<InvalidOperationException>(() => container.SweepOrphansAsync(ct));
        Assert.Equal(3, (await ListChunksAsync("containers/0/segments/9/")).Count);
        Assert.Equal(Enumerable.Range(0, 300).Select(n => (long)n), await ReadEventNumbersAsync(container));
    }

    [Fact]
    public async Task A_new_owner_recovers_from_the_checkpoint_after_truncation_and_keeps_deduplicating()
    {
        var log = new InMemoryDurableDataLog();
        await using (var first = Create(log, Options()))
        {
            await first.StartAsync();
            Assert.True((await first.CreateSegmentAsync(Segment)).IsSuccess);
            await AppendEventsAsync(first, 0, 600);
            await WaitUntilAsync(() => first.UnflushedBytes == 0 && log.Begin > 0, "the log is truncated");
            await AppendEventsAsync(first, 600, 20); // a tail that is only in Tier 1
        }

        var restarted = new InMemoryDurableDataLog(log.Records) { Begin = log.Begin };
        await using var second = Create(restarted, Options(flushAge: TimeSpan.FromMinutes(5)));
        await second.StartAsync();
        Assert.Equal(Enumerable.Range(0, 620).Select(n => (long)n), await ReadEventNumbersAsync(second));

        var duplicate = await second.AppendAsync(Segment, Writer, 5, 1, null, Event(5));
        Assert.True(duplicate.IsSuccess);
        Assert.Equal(second.GetInfo(Segment)!.Length, duplicate.SegmentLength);
        await AppendEventsAsync(second, 620, 5);
        Assert.Equal(Enumerable.Range(0, 625).Select(n => (long)n), await ReadEventNumbersAsync(second));
    }

    private static async Task<long> LastEventNumberAsync(SegmentContainer container, Guid writer)
    {
        var setup = new OperationCompletion();
        container.SetupAppend(Segment, writer, setup, 0);
        return (await setup.Task).EventNumber;
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
    public async Task A_read_may_span_tier2_and_tier1_and_returns_the_same_bytes()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options(flushAge: TimeSpan.FromMinutes(5)), cacheBytes: 1 << 20);
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        await AppendEventsAsync(container, 0, 200);
        await WaitUntilAsync(() => container.GetInfo(Segment) is { } info && container.UnflushedBytes < 64 * 1024 && container.UnflushedBytes > 0, "whole chunks are flushed");

        var expected = new List<byte>();
        for (var n = 0; n < 200; n++)
        {
            expected.AddRange(Event(n));
        }

        var length = container.GetInfo(Segment)!.Length;
        var from = length - container.UnflushedBytes - 5000; // 5000 bytes in Tier 2, the rest only in Tier 1
        using var read = await container.ReadAsync(Segment, from, (int)(length - from), TimeSpan.Zero);
        Assert.Equal(ReadStatus.Ok, read.Status);
        Assert.Equal(expected.Skip((int)from).ToArray(), System.Buffers.BuffersExtensions.ToArray(read.Data));
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
        Assert.Equal(2, (await ListChunksAsync("containers/0/")).Count);

        var length = container.GetInfo(Segment)!.Length;
        Assert.True((await container.TruncateSegmentAsync(Segment, length - 10)).IsSuccess);
        await WaitUntilAsync(() => ListChunksAsync("containers/0/").Result.Count == 1, "the first chunk is deleted");

        Assert.True((await container.DeleteSegmentAsync(Segment)).IsSuccess);
        await WaitUntilAsync(() => ListChunksAsync("containers/0/").Result.Count == 0, "every chunk is deleted");
    }

    [Fact]
    public async Task While_tier2_is_down_appends_fill_the_budget_then_wait_and_finish_when_it_returns()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = Create(log, Options(budget: 256 * 1024));
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        _tier2.Down = true;

        await AppendEventsAsync(container, 0, 240); // under the 256 KiB budget: acknowledged
        var waiting = AppendEventsAsync(container, 240, 60);
        await Task.Delay(1000);
        Assert.False(waiting.IsCompleted, "appends beyond the budget wait for Tier 2");
        Assert.True(container.Tier2Failing);

        _tier2.Down = false;
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
        _tier2.Down = true;
        await AppendEventsAsync(container, 0, 126);

        OperationOutcome outcome = default;
        for (var n = 126; n < 200 && (outcome = await container.AppendAsync(Segment, Writer, n, 1, null, Event(n))).IsSuccess; n++)
        {
        }

        Assert.Equal(OutcomeStatus.ContainerUnavailable, outcome.Status);
        Assert.Contains("Tier 2", outcome.Message, StringComparison.Ordinal);
    }

    /// <summary>A Tier 2 that can be switched off (as a server going down) and counts reads.</summary>
    private sealed class ToggledChunkStorage(IChunkStorage inner) : IChunkStorage
    {
        private int _reads;

        public volatile bool Down;

        public int Reads => Volatile.Read(ref _reads);

        public string Location => inner.Location;

        public Task WriteAsync(string name, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
            Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : inner.WriteAsync(name, data, cancellationToken);

        /// <summary>How long each read takes before it starts (a slow Tier 2).</summary>
        public TimeSpan ReadDelay { get; set; }

        public async Task<int> ReadAsync(string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _reads);
            await Task.Delay(ReadDelay, cancellationToken);
            return Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : await inner.ReadAsync(name, offset, buffer, cancellationToken);
        }

        public Task<long> GetLengthAsync(string name, CancellationToken cancellationToken = default) => inner.GetLengthAsync(name, cancellationToken);

        public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) => inner.ExistsAsync(name, cancellationToken);

        public Task DeleteAsync(string name, CancellationToken cancellationToken = default) =>
            Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : inner.DeleteAsync(name, cancellationToken);

        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
