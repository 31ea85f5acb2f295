using System.Buffers;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Reading;

/// <summary>Reads (ContainerReadIndex.cs): from cached frames, from the log, and from Tier 2 chunks through the chunk cache.</summary>
public sealed class ContainerReadIndexTests() : FileTier2Tests("read-index")
{
    [Fact]
    public async Task A_tail_read_waits_for_the_next_append()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var waiting = container.ReadAsync(Segment, 0, 0, TimeSpan.FromSeconds(10)).AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("arrived"));
        using var read = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ReadStatus.Ok, read.Status);

        using var empty = await container.ReadAsync(Segment, read.Data.Length, 0, TimeSpan.FromMilliseconds(50));
        Assert.Equal(ReadStatus.AtTail, empty.Status);
        using var beyond = await container.ReadAsync(Segment, 1000, 0, TimeSpan.Zero);
        Assert.Equal(OutcomeStatus.InvalidArgument, beyond.Error!.Value.Status);
    }

    [Fact]
    public async Task Reads_load_evicted_frames_back_from_the_log()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(Dir.Path);
        await using var container = await StartWithSegmentAsync(logs.Log(0), cacheBytes: 200 * 1024, options: new ContainerOptions { MaxFrameSize = 64 * 1024 });
        var expected = new List<string>();
        for (var i = 0; i < 100; i++)
        {
            var payload = i + new string((char)('a' + (i % 26)), 10_000);
            expected.Add(payload);
            Assert.True((await container.AppendAsync(Segment, WriterA, i, 1, null, Events(payload))).IsSuccess);
        }

        // 1 MB written through a 200 KB cache: most frames were evicted and come back from the log.
        Assert.Equal(expected, await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task Corrupt_frames_on_the_read_path_are_never_served()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithSegmentAsync(log, cacheBytes: 1);
        await container.AppendAsync(Segment, WriterA, 0, 1, null, Events(new string('z', 5000)));
        await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("evicts the first"));
        log.Records[1][100] ^= 0xFF;
        await Assert.ThrowsAsync<DataCorruptionException>(() => container.ReadAsync(Segment, 0, 0, TimeSpan.Zero).AsTask());
    }

    [Fact]
    public async Task Readers_missing_on_the_same_chunk_at_once_share_one_tier2_read()
    {
        await using var container = await StartWithEventsInTier2Async(Tier2, new InMemoryDurableDataLog());

        // Eight readers start at the segment's head (long gone from the frame cache and the log) while Tier 2 is slow.
        Tier2.ReadDelay = TimeSpan.FromSeconds(1);
        var before = Tier2.Reads;
        var reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            using var read = await container.ReadAsync(Segment, 0, 4096, TimeSpan.Zero, TestContext.Current.CancellationToken);
            return read.Data.ToArray();
        })));

        Assert.Equal(1, Tier2.Reads - before);
        Assert.All(reads, r => Assert.Equal(reads[0], r));
        Assert.Equal(4096, reads[0].Length);
    }

    [Fact]
    public async Task A_reader_catching_up_from_tier2_does_not_evict_the_tail_that_live_readers_use()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithEventsInTier2Async(Tier2, log, cacheBytes: 256 * 1024);

        // A live reader at the tail: served from cached frames.
        var tail = container.GetInfo(Segment)!.Length - (16 * 1024);
        using (var read = await container.ReadAsync(Segment, tail, 16 * 1024, TimeSpan.Zero))
        {
            Assert.Equal(16 * 1024, read.Data.Length);
        }

        var logReads = log.Reads;
        var tierReads = Tier2.Reads;
        Assert.Equal(Enumerable.Range(0, 1000).Select(n => (long)n), await ReadEventNumbersAsync(container)); // ~1 MiB through a 256 KiB cache
        Assert.True(Tier2.Reads > tierReads, "the catch-up read came from Tier 2");

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

        var first = (await ListChunksAsync(Tier2, "containers/0/"))[0];
        var path = Path.Combine(Dir.Sub("tier2"), first);
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
}
