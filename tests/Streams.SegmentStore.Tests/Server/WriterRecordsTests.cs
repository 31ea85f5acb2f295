using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Server;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>
/// Writer records across scales (SegmentRequests.GetWriterRecordsAsync / InheritWriterRecordsAsync, AppendSession's
/// setup answer): inheritance on a successor, its replay, and setups on sealed segments.
/// </summary>
public sealed class WriterRecordsTests
{
    private const string Successor = "scope/stream/1.#epoch.1";
    private static readonly Guid Writer = Guid.Parse("aaaaaaaa-0000-0000-0000-000000000001");

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Inheriting_replaces_a_writers_ranges_keeps_its_own_number_and_survives_a_replay()
    {
        using var data = new TempDirectory("writer-records");
        var log = new InMemoryDurableDataLog();
        await using (var service = await StartAsync(data.Path, log))
        {
            var requests = new SegmentRequests(service);
            await requests.CreateAsync(new CreateSegmentRequest { Segment = Successor }, Token);
            var container = service.ContainerFor(Successor, out _)!;

            // Before anyone wrote to it.
            await requests.InheritWriterRecordsAsync(Inherit(Writer, (0, 0.5, 10), (0.5, 1, 20)), Token);
            var records = await requests.GetWriterRecordsAsync(new SegmentRequest { Segment = Successor }, Token);
            var record = Assert.Single(records.Writers);
            Assert.Equal((-1L, 2), (record.LastEventNumber, record.Inherited.Count));
            Assert.False(records.Sealed);

            Assert.True((await container.AppendAsync(Successor, Writer, 7, 1, null, ContainerTesting.Events("e7"), Token)).IsSuccess);
            await requests.InheritWriterRecordsAsync(Inherit(Writer, (0, 1, 30)), Token);
            await requests.InheritWriterRecordsAsync(Inherit(Writer, (0, 1, 30)), Token); // idempotent
            record = Assert.Single((await requests.GetWriterRecordsAsync(new SegmentRequest { Segment = Successor }, Token)).Writers);
            Assert.Equal(7, record.LastEventNumber);
            Assert.Equal((0.0, 1.0, 30L), (record.Inherited.Single().KeyStart, record.Inherited.Single().KeyEnd, record.Inherited.Single().LastEventNumber));
        }

        await using var restarted = await StartAsync(data.Path, new InMemoryDurableDataLog(log.Records));
        var replayed = Assert.Single((await new SegmentRequests(restarted).GetWriterRecordsAsync(new SegmentRequest { Segment = Successor }, Token)).Writers);
        Assert.Equal(7, replayed.LastEventNumber);
        Assert.Equal(30, replayed.Inherited.Single().LastEventNumber);
        Assert.Equal(Writer, new Guid(replayed.WriterId.Span));
    }

    [Fact]
    public async Task Bad_writer_records_and_seeds_are_refused_with_what_to_change()
    {
        using var data = new TempDirectory("writer-records");
        await using var service = await StartAsync(data.Path, new InMemoryDurableDataLog());
        var requests = new SegmentRequests(service);
        await requests.CreateAsync(new CreateSegmentRequest { Segment = Successor }, Token);

        var shortId = new InheritWriterRecordsRequest { Segment = Successor };
        shortId.Writers.Add(new Contracts.SegmentStore.WriterRecord { WriterId = ByteString.CopyFrom(new byte[15]) });
        var e = await Assert.ThrowsAsync<RpcException>(() => requests.InheritWriterRecordsAsync(shortId, Token));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("16 bytes", e.Status.Detail, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<RpcException>(() => requests.InheritWriterRecordsAsync(Inherit(Writer, (0.5, 0.25, 1)), Token));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("key_start < key_end", e.Status.Detail, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<RpcException>(() => requests.GetWriterRecordsAsync(new SegmentRequest { Segment = "scope/stream/9.#epoch.0" }, Token));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);

        var seed = new SegmentLoadSeed { AgeMs = 1 };
        seed.EventRates.Add(-1);
        seed.ByteRates.Add(1);
        e = await Assert.ThrowsAsync<RpcException>(() => requests.CreateAsync(new CreateSegmentRequest { Segment = "scope/stream/2.#epoch.1", Seed = seed }, Token));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task A_setup_returns_the_writers_inherited_ranges_and_on_a_sealed_segment_its_final_number()
    {
        using var data = new TempDirectory("writer-records");
        await using var service = await StartAsync(data.Path, new InMemoryDurableDataLog());
        var requests = new SegmentRequests(service);
        await requests.CreateAsync(new CreateSegmentRequest { Segment = Successor }, Token);
        await requests.InheritWriterRecordsAsync(Inherit(Writer, (0, 1, 99)), Token);
        var replies = new System.Collections.Concurrent.ConcurrentQueue<AppendReply>();
        using var session = new AppendSession(service, replies.Enqueue);
        var writer = ByteString.CopyFrom(Writer.ToByteArray());

        session.OnSetup(new SetupAppend { RequestId = 1, WriterId = writer, Segment = Successor });
        await session.DrainAsync(Token);
        var setup = Assert.Single(replies).Setup;
        Assert.Equal((-1L, false), (setup.LastEventNumber, setup.Sealed));
        Assert.Equal(99, setup.Inherited.Single().LastEventNumber);

        for (var n = 0; n < 3; n++)
        {
            await session.OnBlockAsync(new Common.Wire.AppendBlockHeader(1, n, 1, null), new(ContainerTesting.Events("e" + n)), Token);
        }

        await session.DrainAsync(Token);
        Assert.Equal(2, replies.Last().Appended.LastEventNumber);
        await requests.SealAsync(new SegmentRequest { Segment = Successor }, Token);

        // Set up again after the seal: answered, not refused, with the final number.
        session.OnSetup(new SetupAppend { RequestId = 2, WriterId = writer, Segment = Successor });
        await session.DrainAsync(Token);
        var sealedSetup = replies.Last().Setup;
        Assert.Equal((2L, true), (sealedSetup.LastEventNumber, sealedSetup.Sealed));
        Assert.Equal(99, sealedSetup.Inherited.Single().LastEventNumber);

        // Appends are still refused.
        await session.OnBlockAsync(new Common.Wire.AppendBlockHeader(2, 3, 1, null), new(ContainerTesting.Events("e3")), Token);
        await session.DrainAsync(Token);
        Assert.Equal(AppendError.SegmentSealed, replies.Last().Rejected.Error);
    }

    [Fact]
    public void A_segment_keeps_at_most_its_writer_limit_and_evicts_the_longest_idle()
    {
        var segment = new SegmentMetadata(1, "s/t/0.#epoch.0", 0) { MaxWriters = 200 };
        var writers = Enumerable.Range(0, 200).Select(i => new Guid(i, 0, 0, new byte[8])).ToList();
        segment.RestoreWriters(writers.Select((w, i) => new SegmentStore.Logs.CheckpointWriter(w, 5, 1_000 + i)), 0);

        segment.MakeDurable(Guid.NewGuid(), 0);

        var kept = segment.DurableWriters().Select(w => w.Writer).ToHashSet();
        Assert.Equal(199, kept.Count); // two went (a hundredth of the limit), one came
        Assert.DoesNotContain(writers[0], kept);
        Assert.DoesNotContain(writers[1], kept);
        Assert.Contains(writers[2], kept);
    }

    private static InheritWriterRecordsRequest Inherit(Guid writer, params (double Start, double End, long Last)[] ranges) =>
        Inherit(writer, ranges, Successor);

    private static InheritWriterRecordsRequest Inherit(Guid writer, (double Start, double End, long Last) range, string segment) =>
        Inherit(writer, [range], segment);

    private static InheritWriterRecordsRequest Inherit(Guid writer, (double Start, double End, long Last)[] ranges, string segment)
    {
        var record = new Contracts.SegmentStore.WriterRecord { WriterId = ByteString.CopyFrom(writer.ToByteArray()), LastEventNumber = -1 };
        record.Inherited.Add(ranges.Select(r => new InheritedWriterRange { KeyStart = r.Start, KeyEnd = r.End, LastEventNumber = r.Last }));
        var request = new InheritWriterRecordsRequest { Segment = segment };
        request.Writers.Add(record);
        return request;
    }

    private static async Task<SegmentStoreService> StartAsync(string directory, InMemoryDurableDataLog log)
    {
        var service = new SegmentStoreService(new SegmentStoreOptions { DataDirectory = directory, ContainerCount = 1 }, _ => log, NullLoggerFactory.Instance);
        await service.StartAsync(Token);
        return service;
    }
}
