using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.Controller;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Reading;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Load;

/// <summary>A container's load (ContainerLoad.cs): kept across restarts, seeded successors, and reports through a sink.</summary>
public sealed class ContainerLoadTests() : FileTier2Tests("container-load")
{
    /// <summary>The timer never fires during a test: the tests tick by hand.</summary>
    private static readonly SegmentLoadOptions ManualTicks = new() { TickMs = 100_000 };

    [Fact]
    public async Task Rates_and_writer_records_survive_a_restart_from_a_checkpoint()
    {
        var log = new InMemoryDurableDataLog();
        var options = Options() with { Load = ManualTicks };
        var inherited = new InheritedRange(0.25, 0.5, 41);
        LoadState before;
        await using (var first = Create(log, options))
        {
            await first.StartAsync();
            Assert.True((await first.CreateSegmentAsync(Segment)).IsSuccess);
            Assert.True((await first.InheritWritersAsync(Segment, [(WriterB, [inherited])])).IsSuccess);
            await AppendEventsAsync(first, 0, 100);
            Assert.Null(first.TickLoad(5000)); // no sink: measured, not reported
            before = first.GetLoad(Segment)!;
            Assert.True(before.EventRates[0] > 0);

            await AppendEventsAsync(first, 100, 500); // several checkpoints; the log is truncated past the creation
            await WaitUntilAsync(() => first.UnflushedBytes == 0 && log.Begin > 0, "the log is truncated");
        }

        var restarted = new InMemoryDurableDataLog(log.Records) { Begin = log.Begin };
        await using var second = Create(restarted, options);
        await second.StartAsync();
        var after = second.GetLoad(Segment)!;
        Assert.Equal(before.EventRates, after.EventRates);
        Assert.Equal(before.ByteRates, after.ByteRates);
        Assert.Equal(5000, after.AgeMs);
        var records = second.GetWriterRecords(Segment)!.Value.Writers;
        Assert.Equal([inherited], records.Single(w => w.Writer == WriterB).Inherited);
        Assert.Equal(599, records.Single(w => w.Writer == Writer).LastEventNumber);
    }

    [Fact]
    public async Task A_seeded_successor_starts_from_its_seed_and_keeps_it_through_a_replay()
    {
        var log = new InMemoryDurableDataLog();
        var seed = new LoadState([50, 40, 30, 20], [5000, 4000, 3000, 2000], 90_000, []);
        await using (var container = ContainerTesting.Create(log, options: new ContainerOptions { Load = ManualTicks }))
        {
            await container.StartAsync();
            Assert.True((await container.CreateSegmentAsync(Segment, seed)).IsSuccess);
            var load = container.GetLoad(Segment)!;
            Assert.Equal(seed.EventRates, load.EventRates);
            Assert.Equal(90_000, load.AgeMs);
        }

        await using var recovered = ContainerTesting.Create(new InMemoryDurableDataLog(log.Records), options: new ContainerOptions { Load = ManualTicks });
        await recovered.StartAsync();
        var replayed = recovered.GetLoad(Segment)!;
        Assert.Equal(seed.EventRates, replayed.EventRates);
        Assert.Equal(seed.ByteRates, replayed.ByteRates);
        Assert.Equal(90_000, replayed.AgeMs);
    }

    [Fact]
    public async Task A_container_reports_its_unsealed_segments_with_their_key_histogram()
    {
        var sink = new Sink();
        const string other = "scope/stream/1.#epoch.0";
        await using var container = new SegmentContainer(0, new InMemoryDurableDataLog(), new FrameCache(64 << 20),
            new ContainerOptions { Load = ManualTicks }, NullLogger.Instance, loadSink: sink, store: "store-7");
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        Assert.True((await container.CreateSegmentAsync(other)).IsSuccess);

        var completion = new OperationCompletion();
        var data = new ReadOnlySequence<byte>(Events("a", "b", "c"));
        Assert.Equal(AppendAcceptance.Accepted, container.TryAppend(Segment, Writer, 2, 3, null, data, completion, 0, out _, keySample: 1UL << 31));
        Assert.True((await completion.Task).IsSuccess);
        await container.TickLoad(5000)!;

        var report = sink.Reports.Single();
        Assert.Equal("store-7", report.SegmentStore);
        var load = report.Segments.Single(s => s.Segment == Segment);
        Assert.Equal(3 / 5.0 * (1 - Math.Exp(-5000 / 120_000.0)), load.EventRates[0], 9);
        Assert.Equal(4, load.EventRates.Count);
        Assert.Equal(1.0, load.KeyBuckets[15]); // 2^31 is 1 + a key just below the middle of the range: the last of the lower 16 buckets
        Assert.Contains(report.Segments, s => s.Segment == other);

        Assert.True((await container.SealSegmentAsync(Segment)).IsSuccess);
        await container.TickLoad(ManualTicks.ReportIntervalMs)!;
        Assert.Equal([other], sink.Reports[^1].Segments.Select(s => s.Segment));
    }

    private sealed class Sink : ISegmentLoadSink
    {
        public List<LoadReport> Reports { get; } = [];

        public Task<bool> ReportAsync(LoadReport report, CancellationToken cancellationToken)
        {
            Reports.Add(report.Clone());
            return Task.FromResult(true);
        }
    }
}
