using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Reading;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Containers;

public sealed class SegmentContainerTests : IDisposable
{
    private const string Segment = "scope/stream/0.#epoch.0";
    private static readonly Guid WriterA = Guid.Parse("aaaaaaaa-0000-0000-0000-000000000001");
    private static readonly Guid WriterB = Guid.Parse("bbbbbbbb-0000-0000-0000-000000000002");
    private readonly TempDirectory _dir = new("container");

    public void Dispose() => _dir.Dispose();

    private static SegmentContainer Create(IDurableDataLog log, long cacheBytes = 64 << 20, ContainerOptions? options = null) =>
        new(0, log, new FrameCache(cacheBytes), options ?? new ContainerOptions(), NullLogger.Instance);

    private static byte[] Events(params string[] payloads)
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

    private static async Task<List<string>> ReadAllEventsAsync(SegmentContainer container, string segment = Segment)
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

    private static async Task<SegmentContainer> StartWithSegmentAsync(IDurableDataLog log, long cacheBytes = 64 << 20, ContainerOptions? options = null)
    {
        var container = Create(log, cacheBytes, options);
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        return container;
    }

    [Fact]
    public async Task Appends_are_acknowledged_with_lengths_and_read_back_in_order()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var first = await container.AppendAsync(Segment, WriterA, 1, 2, null, Events("a", "bb"));
        var second = await container.AppendAsync(Segment, WriterA, 2, 1, null, Events("ccc"));
        Assert.Equal((OutcomeStatus.Success, 11L, 1L), (first.Status, first.SegmentLength, first.EventNumber));
        Assert.Equal((OutcomeStatus.Success, 18L, 2L), (second.Status, second.SegmentLength, second.EventNumber));
        Assert.Equal(["a", "bb", "ccc"], await ReadAllEventsAsync(container));
        Assert.Equal(18, container.GetInfo(Segment)!.Length);
    }

    [Fact]
    public async Task Resent_blocks_are_acknowledged_but_never_appended_twice()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        await container.AppendAsync(Segment, WriterA, 5, 1, null, Events("once"));
        var resent = await container.AppendAsync(Segment, WriterA, 5, 1, null, Events("once"));
        var older = await container.AppendAsync(Segment, WriterA, 3, 1, null, Events("old"));
        var otherWriter = await container.AppendAsync(Segment, WriterB, 5, 1, null, Events("b"));
        Assert.True(resent.IsSuccess && older.IsSuccess && otherWriter.IsSuccess);
        Assert.Equal(5, resent.EventNumber);
        // Acknowledgements are cumulative: a re-sent older block is acknowledged with the writer's latest number.
        Assert.Equal(5, older.EventNumber);
        Assert.Equal(["once", "b"], await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task Setup_reports_the_writers_last_durable_event_number()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        await container.AppendAsync(Segment, WriterA, 9, 1, null, Events("x"));
        var setup = new OperationCompletion();
        container.SetupAppend(Segment, WriterA, setup, 0);
        Assert.Equal(9, (await setup.Task).EventNumber);
        var fresh = new OperationCompletion();
        container.SetupAppend(Segment, WriterB, fresh, 0);
        Assert.Equal(-1, (await fresh.Task).EventNumber);
    }

    [Fact]
    public async Task Conditional_appends_apply_only_at_the_expected_offset()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        Assert.True((await container.AppendAsync(Segment, WriterA, 0, 1, 0, Events("first"))).IsSuccess);
        var stale = await container.AppendAsync(Segment, WriterA, 1, 1, 0, Events("stale"));
        Assert.Equal(OutcomeStatus.ConditionFailed, stale.Status);
        Assert.Equal(9, stale.SegmentLength);
        Assert.True((await container.AppendAsync(Segment, WriterA, 2, 1, 9, Events("second"))).IsSuccess);
        Assert.Equal(["first", "second"], await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task A_sealed_segment_refuses_appends_and_its_reads_end()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("last"));
        Assert.True((await container.SealSegmentAsync(Segment)).IsSuccess);
        Assert.True((await container.SealSegmentAsync(Segment)).IsSuccess);
        Assert.Equal(OutcomeStatus.SegmentSealed, (await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("late"))).Status);
        using var end = await container.ReadAsync(Segment, 8, 0, TimeSpan.FromSeconds(5));
        Assert.Equal(ReadStatus.EndOfSegment, end.Status);
        Assert.True(container.GetInfo(Segment)!.Sealed);
    }

    [Fact]
    public async Task Truncation_hides_data_below_the_new_start()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("gone"));
        await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("kept"));
        Assert.True((await container.TruncateSegmentAsync(Segment, 8)).IsSuccess);
        Assert.Equal(OutcomeStatus.InvalidArgument, (await container.TruncateSegmentAsync(Segment, 4)).Status);
        Assert.Equal(OutcomeStatus.InvalidArgument, (await container.TruncateSegmentAsync(Segment, 100)).Status);
        using var below = await container.ReadAsync(Segment, 0, 0, TimeSpan.Zero);
        Assert.Equal((ReadStatus.Truncated, 8L), (below.Status, below.StartOffset));
        Assert.Equal(["kept"], await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task Deleted_segments_are_gone_and_the_name_can_be_reused()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("old"));
        Assert.True((await container.DeleteSegmentAsync(Segment)).IsSuccess);
        Assert.Null(container.GetInfo(Segment));
        Assert.Equal(OutcomeStatus.NoSuchSegment, (await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("x"))).Status);
        using (var read = await container.ReadAsync(Segment, 0, 0, TimeSpan.Zero))
        {
            Assert.Equal(OutcomeStatus.NoSuchSegment, read.Error!.Value.Status);
        }

        Assert.True((await container.CreateSegmentAsync(Segment)).IsSuccess);
        Assert.Equal(0, container.GetInfo(Segment)!.Length);
    }

    [Theory]
    [InlineData(1, 2, "holds 1 events but declares 2")]
    [InlineData(-1, 1, "start at 0")]
    [InlineData(0, 0, "at least one event")]
    public async Task Malformed_blocks_are_rejected_with_reasons(long eventNumber, int count, string reason)
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var outcome = await container.AppendAsync(Segment, WriterA, eventNumber, count, null, Events("x"));
        Assert.Equal(OutcomeStatus.InvalidArgument, outcome.Status);
        Assert.Contains(reason, outcome.Message);
    }

    [Fact]
    public async Task A_block_that_cuts_an_event_in_half_is_rejected()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var outcome = await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("whole event")[..7]);
        Assert.Equal(OutcomeStatus.InvalidArgument, outcome.Status);
        Assert.Equal(0, container.GetInfo(Segment)!.Length);
    }

    [Fact]
    public async Task Everything_survives_a_restart_on_the_same_log()
    {
        await using (var logs = await LocalLedgerLogs.OpenAsync(_dir.Path))
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

        await using var reopened = await LocalLedgerLogs.OpenAsync(_dir.Path);
        await using var recovered = Create(reopened.Log(0));
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
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
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
    public async Task Concurrent_writers_keep_their_own_order()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog { AppendDelay = TimeSpan.FromMilliseconds(1) });
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var id = Guid.NewGuid();
            for (var i = 0; i < 100; i++)
            {
                Assert.True((await container.AppendAsync(Segment, id, i, 1, null, Events($"{w}:{i}"))).IsSuccess);
            }
        }));
        await Task.WhenAll(writers);
        var events = await ReadAllEventsAsync(container);
        Assert.Equal(800, events.Count);
        foreach (var group in events.GroupBy(e => e.Split(':')[0]))
        {
            Assert.Equal(Enumerable.Range(0, 100), group.Select(e => int.Parse(e.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    [Fact]
    public async Task A_failing_log_fails_pending_operations_and_the_container()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithSegmentAsync(log);
        log.Gate = new TaskCompletionSource();
        var pending = container.AppendAsync(Segment, WriterA, 0, 1, null, Events("never acknowledged"));
        await Task.Delay(50);
        log.FailAppends = true;
        log.Gate.SetResult();

        var outcome = await pending;
        Assert.Equal(OutcomeStatus.ContainerUnavailable, outcome.Status);
        await container.Failed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerState.Failed, container.State);
        Assert.Equal(OutcomeStatus.ContainerUnavailable, (await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("later"))).Status);
    }

    [Fact]
    public async Task A_full_pipeline_pushes_back()
    {
        var log = new InMemoryDurableDataLog { Gate = new TaskCompletionSource() };
        await using var container = Create(log, options: new ContainerOptions { MaxFrameSize = 64 * 1024, MaxPendingFrames = 2, MaxConcurrentWrites = 1 });
        await container.StartAsync();
        log.Gate = null;
        await container.CreateSegmentAsync(Segment);
        log.Gate = new TaskCompletionSource();

        var block = new ReadOnlySequence<byte>(Events(new string('x', 60 * 1024)));
        var callbacks = new List<OperationCompletion>();
        var accepted = 0;
        AppendAcceptance acceptance;
        do
        {
            var callback = new OperationCompletion();
            acceptance = container.TryAppend(Segment, WriterA, accepted, 1, null, block, callback, 0, out _);
            if (acceptance == AppendAcceptance.Accepted)
            {
                callbacks.Add(callback);
                accepted++;
            }
        }
        while (acceptance == AppendAcceptance.Accepted && accepted < 100);

        Assert.Equal(AppendAcceptance.NoCapacity, acceptance);
        Assert.InRange(accepted, 1, 3);
        var capacity = container.WaitForCapacityAsync(CancellationToken.None);
        Assert.False(capacity.IsCompleted);
        log.Gate.SetResult();
        await capacity.WaitAsync(TimeSpan.FromSeconds(5));
        await Task.WhenAll(callbacks.Select(c => c.Task)).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(callbacks, c => Assert.True(c.Task.Result.IsSuccess));
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
        await using var recovering = Create(new InMemoryDurableDataLog(log.Records));
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
        await using var recovering = Create(new InMemoryDurableDataLog(log.Records));
        var error = await Assert.ThrowsAsync<DataCorruptionException>(() => recovering.StartAsync());
        Assert.Contains("missing", error.Message);
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
}
