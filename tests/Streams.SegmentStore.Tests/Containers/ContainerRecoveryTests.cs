using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;
using Streams.Tier2.FileSystem;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>Recovery (ContainerRecovery.cs): replaying the log, refusing holes and corruption, and starting from checkpoints, including ones far larger than a log record (10 MiB) written as pages.</summary>
public sealed class ContainerRecoveryTests() : FileTier2Tests("container-recovery")
{
    private const int Segments = 200;
    private const int ChunksPerSegment = 1_000;
    private const int WritersPerSegment = 1_000;

    [Fact]
    public async Task Everything_survives_a_restart_on_the_same_log()
    {
        await using (var logs = await LocalLedgerLogs.OpenAsync(Dir.Path))
        await using (var container = await StartWithSegmentAsync(logs.Log(0, rolloverSize: 64)))
        {
            await container.CreateSegmentAsync("scope/stream/1.#epoch.0");
            await container.CreateSegmentAsync("scope/stream/2.#epoch.0");
            for (var i = 0; i < 50; i++)
            {
                await container.AppendAsync(Segment, WriterA, i, 1, null, Events("e" + i));
            }

            await container.SealSegmentAsync("scope/stream/1.#epoch.0");
            await container.DeleteSegmentAsync("scope/stream/2.#epoch.0");
            await container.TruncateSegmentAsync(Segment, 6 * 10); // e0..e9 are 6 bytes each: e10 starts at 60
        }

        await using var reopened = await LocalLedgerLogs.OpenAsync(Dir.Path);
        await using var recovered = ContainerTesting.Create(reopened.Log(0));
        await recovered.StartAsync();
        Assert.Equal(Enumerable.Range(10, 40).Select(i => "e" + i), await ReadAllEventsAsync(recovered));
        Assert.True(recovered.GetInfo("scope/stream/1.#epoch.0")!.Sealed);
        Assert.Null(recovered.GetInfo("scope/stream/2.#epoch.0"));

        // Deduplication state survived too: a re-sent block is not appended again.
        await recovered.AppendAsync(Segment, WriterA, 49, 1, null, Events("e49"));
        Assert.Equal(40, (await ReadAllEventsAsync(recovered)).Count);
        var setup = new OperationCompletion();
        recovered.SetupAppend(Segment, WriterA, setup, 0);
        Assert.Equal(49, (await setup.Task).EventNumber);
    }

    [Fact]
    public async Task Recovery_refuses_a_corrupt_frame()
    {
        var log = new InMemoryDurableDataLog();
        await using (var container = await StartWithSegmentAsync(log))
        {
            await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("data"));
        }

        log.Records[^1][30] ^= 0x01;
        await using var recovering = ContainerTesting.Create(new InMemoryDurableDataLog(log.Records));
        await Assert.ThrowsAsync<DataCorruptionException>(() => recovering.StartAsync());
    }

    [Fact]
    public async Task Recovery_refuses_a_log_with_a_missing_frame()
    {
        var log = new InMemoryDurableDataLog();
        await using (var container = await StartWithSegmentAsync(log))
        {
            for (var i = 0; i < 3; i++)
            {
                await container.AppendAsync(Segment, WriterA, i, 1, null, Events("data" + i));
            }
        }

        log.Records.RemoveAt(2);
        await using var recovering = ContainerTesting.Create(new InMemoryDurableDataLog(log.Records));
        var error = await Assert.ThrowsAsync<DataCorruptionException>(() => recovering.StartAsync());
        Assert.Contains("missing", error.Message);
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

    [Fact]
    public async Task Metadata_larger_than_a_log_record_is_checkpointed_in_pages_recovered_and_checkpointed_again()
    {
        var log = new InMemoryDurableDataLog();
        var synthetic = Synthetic();
        var size = WriteCheckpoint(log, synthetic);
        Assert.True(size > log.MaxRecordSize, $"The checkpoint ({size} bytes) should not fit in one log record.");
        TestContext.Current.TestOutputHelper?.WriteLine($"{Segments * ChunksPerSegment} chunks, {Segments * WritersPerSegment} writers: a {size >> 20} MiB checkpoint in {log.Records.Count} records");

        // The first owner recovers from it, then writes a checkpoint of its own (a new owner checkpoints soon).
        var before = log.Records.Count;
        var watch = Stopwatch.StartNew();
        await using (var first = CreateForCheckpoints(log))
        {
            await first.StartAsync();
            TestContext.Current.TestOutputHelper?.WriteLine($"recovered in {watch.ElapsedMilliseconds} ms");
            AssertHoldsEverything(first);
            await WaitUntilAsync(() => log.Begin >= before, "the new owner checkpointed and truncated its log at that checkpoint");
            Assert.All(log.Records, r => Assert.True(r.Length <= log.MaxRecordSize));
        }

        // The next owner recovers from that one.
        await using var second = CreateForCheckpoints(new InMemoryDurableDataLog(log.Records) { Begin = log.Begin });
        await second.StartAsync();
        AssertHoldsEverything(second);
    }

    [Fact]
    public async Task A_checkpoint_cut_short_by_a_crash_is_ignored_and_the_one_before_it_is_used()
    {
        var log = new InMemoryDurableDataLog();
        WriteCheckpoint(log, Synthetic(segments: 2));
        var full = log.Records.Count;
        // A second checkpoint whose owner died after its first pages: the log ends inside it.
        WriteCheckpoint(log, new ContainerCheckpoint(99, []));
        WriteCheckpoint(log, Synthetic(segments: 30), keepPages: 1);
        Assert.True(log.Records.Count > full);

        await using var container = CreateForCheckpoints(log);
        await container.StartAsync();
        Assert.Empty(container.ListSegments()); // the empty checkpoint, not the half-written one after it
    }

    private static ContainerCheckpoint Synthetic(int segments = Segments)
    {
        var list = new List<CheckpointSegment>(segments);
        for (var s = 0; s < segments; s++)
        {
            var chunks = new List<ChunkInfo>(ChunksPerSegment);
            for (var c = 0; c < ChunksPerSegment; c++)
            {
                chunks.Add(new ChunkInfo(string.Create(CultureInfo.InvariantCulture, $"containers/0/segments/{s + 1}/{(long)c * 4096:D19}.e1"), (long)c * 4096, 4096, (uint)c));
            }

            var writers = new List<CheckpointWriter>(WritersPerSegment);
            for (var w = 0; w < WritersPerSegment; w++)
            {
                writers.Add(new CheckpointWriter(WriterId(s, w), w, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            }

            var length = (long)ChunksPerSegment * 4096;
            list.Add(new CheckpointSegment(s + 1, SegmentName(s), 0, length, 0, false, length, chunks, writers));
        }

        return new ContainerCheckpoint(segments + 1, list);
    }

    private static string SegmentName(int s) => string.Create(CultureInfo.InvariantCulture, $"scope/stream/{s}.#epoch.0");

    private static Guid WriterId(int segment, int writer) => new(segment, (short)(writer >> 16), (short)writer, 1, 2, 3, 4, 5, 6, 7, 8);

    /// <summary>Appends a checkpoint to the log as page frames, as a container writes them; returns its size in bytes.</summary>
    private static long WriteCheckpoint(InMemoryDurableDataLog log, ContainerCheckpoint checkpoint, int keepPages = int.MaxValue)
    {
        const int FrameSize = 1024 * 1024;
        var pageSize = FrameSize - DataFrame.HeaderSize - DataFrame.OperationHeaderSize - CheckpointPages.HeaderSize - DataFrame.TrailerSize;
        using var serialized = new PagedBuffer(pageSize);
        checkpoint.WriteTo(serialized);
        var pages = serialized.Pages;
        var sequence = log.Records.Count;
        var id = Random.Shared.NextInt64();
        for (var i = 0; i < pages.Count && i < keepPages; i++)
        {
            using var frame = new DataFrameBuilder(FrameSize);
            frame.AddCheckpointPage(id, i, pages.Count, pages[i].Span);
            log.Records.Add(frame.Seal(sequence++).ToArray());
        }

        return serialized.Length;
    }

    private static void AssertHoldsEverything(SegmentContainer container)
    {
        Assert.Equal(Segments, container.ListSegments().Count);
        for (var s = 0; s < Segments; s += 37)
        {
            var info = container.GetInfo(SegmentName(s));
            Assert.NotNull(info);
            Assert.Equal((long)ChunksPerSegment * 4096, info.Length);
        }
    }

    private SegmentContainer CreateForCheckpoints(InMemoryDurableDataLog log) =>
        new(0, log, new FrameCache(1 << 20), new ContainerOptions
        {
            Storage = new StorageWriterOptions { FlushAge = TimeSpan.FromMilliseconds(50), CheckpointEvery = 1 << 20, MinRetryDelay = TimeSpan.FromMilliseconds(20) },
        }, NullLogger.Instance, new FileChunkStorage(Dir.Sub("tier2")), new ChunkCache(1 << 20));
}
