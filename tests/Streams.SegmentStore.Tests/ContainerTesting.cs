using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Reading;
using Streams.Tier2;
using Streams.Testing;

namespace Streams.SegmentStore.Tests;

/// <summary>What the tests of a container's parts share: a segment, writers, events, and containers over test logs.</summary>
internal static class ContainerTesting
{
    public const string Segment = "scope/stream/0.#epoch.0";
    public static readonly Guid WriterA = Guid.Parse("aaaaaaaa-0000-0000-0000-000000000001");
    public static readonly Guid WriterB = Guid.Parse("bbbbbbbb-0000-0000-0000-000000000002");

    /// <summary>The writer of the Tier 2 tests (<see cref="WriterA"/>).</summary>
    public static readonly Guid Writer = WriterA;

    /// <summary>A container without Tier 2.</summary>
    public static SegmentContainer Create(IDurableDataLog log, long cacheBytes = 64 << 20, ContainerOptions? options = null) =>
        new(0, log, new FrameCache(cacheBytes), options ?? new ContainerOptions(), NullLogger.Instance);

    public static async Task<SegmentContainer> StartWithSegmentAsync(IDurableDataLog log, long cacheBytes = 64 << 20, ContainerOptions? options = null)
    {
        var container = Create(log, cacheBytes, options);
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        return container;
    }

    /// <summary>Framed events with these payloads, as one append block.</summary>
    public static byte[] Events(params string[] payloads)
    {
        var bytes = new List<byte>();
        foreach (var payload in payloads)
        {
            var body = Encoding.UTF8.GetBytes(payload);
            var frame = new byte[EventFraming.FrameSize(body.Length)];
            EventFraming.Write(frame, body, default, storeKey: false);
            bytes.AddRange(frame);
        }

        return [.. bytes];
    }

    public static async Task<List<string>> ReadAllEventsAsync(SegmentContainer container, string segment = Segment)
    {
        var events = new List<string>();
        var offset = container.GetInfo(segment)!.StartOffset;
        while (true)
        {
            using var read = await container.ReadAsync(segment, offset, 0, TimeSpan.Zero);
            Assert.Null(read.Error);
            if (read.Status != ReadStatus.Ok)
            {
                return events;
            }

            var data = read.Data;
            while (EventFraming.TryReadEvent(ref data, out var e))
            {
                events.Add(Encoding.UTF8.GetString(e.Payload));
            }

            Assert.True(data.IsEmpty, "Reads of whole appends end at event boundaries.");
            offset += read.Data.Length;
        }
    }

    // ---- With a Tier 2 ----

    /// <summary>Small frames, chunks and checkpoints, so a few hundred KiB exercise every path of the storage writer.</summary>
    public static ContainerOptions Options(long budget = 4 << 20, TimeSpan? flushAge = null, TimeSpan? budgetTimeout = null, TimeSpan? writerExpiry = null) => new()
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

    public static SegmentContainer CreateWithTier2(IChunkStorage tier2, InMemoryDurableDataLog log, ContainerOptions options, long cacheBytes = 128 * 1024) =>
        new(0, log, new FrameCache(cacheBytes), options, NullLogger.Instance, tier2, new ChunkCache(256 * 1024));

    /// <summary>A started container with one segment of 1000 events (~1 MiB), all in Tier 2 and the log truncated.</summary>
    public static async Task<SegmentContainer> StartWithEventsInTier2Async(IChunkStorage tier2, InMemoryDurableDataLog log, long cacheBytes = 128 * 1024)
    {
        var container = CreateWithTier2(tier2, log, Options(), cacheBytes);
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

    /// <summary>An event whose payload says its number, padded to about 1 KiB.</summary>
    public static byte[] Event(long number)
    {
        var body = Encoding.UTF8.GetBytes(number.ToString("D8", CultureInfo.InvariantCulture) + new string('x', 1000));
        var frame = new byte[EventFraming.FrameSize(body.Length)];
        EventFraming.Write(frame, body, default, storeKey: false);
        return frame;
    }

    public static async Task AppendEventsAsync(SegmentContainer container, long from, long count, Guid? writer = null)
    {
        for (var n = from; n < from + count; n++)
        {
            var outcome = await container.AppendAsync(Segment, writer ?? Writer, n, 1, null, Event(n));
            Assert.True(outcome.IsSuccess, outcome.Message);
        }
    }

    public static async Task<List<long>> ReadEventNumbersAsync(SegmentContainer container, long offset = 0, int maxBytes = 0)
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
                numbers.Add(long.Parse(Encoding.UTF8.GetString(e.Payload.Slice(0, 8)), CultureInfo.InvariantCulture));
            }

            offset += read.Data.Length;
        }
    }

    public static async Task<long> LastEventNumberAsync(SegmentContainer container, Guid writer)
    {
        var setup = new OperationCompletion();
        container.SetupAppend(Segment, writer, setup, 0);
        return (await setup.Task).EventNumber;
    }

    public static async Task<List<string>> ListChunksAsync(IChunkStorage tier2, string prefix)
    {
        var names = new List<string>();
        await foreach (var name in tier2.ListAsync(prefix, TestContext.Current.CancellationToken))
        {
            names.Add(name);
        }

        return names;
    }

    public static Task WaitUntilAsync(Func<bool> condition, string what) =>
        Waiting.UntilAsync(condition, what, TimeSpan.FromSeconds(60));
}
