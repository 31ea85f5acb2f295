using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>Validation and the accepted and durable views (ContainerMetadata.cs): through a container, and directly over an operation log.</summary>
public sealed class ContainerMetadataTests
{
    /// <summary>Applies durable frames to the metadata only, as the container does, and keeps the deletions it reports.</summary>
    private sealed class MetadataApplier(ContainerMetadata metadata) : IOperationApplier
    {
        public List<DeletedSegment> Deleted { get; } = [];

        public void ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed)
        {
            frame.Builder.Dispose();
            metadata.ApplyDurable(frame, address, answers, changed, Deleted);
        }

        public void OnLogStopped() => metadata.SignalAll();
    }

    private static (OperationLog Log, ContainerMetadata Metadata, Tier1Budget Budget, MetadataApplier Applier) Parts(InMemoryDurableDataLog durable, bool start = true)
    {
        var options = new ContainerOptions();
        var log = new OperationLog(0, durable, options, NullLogger.Instance);
        var budget = new Tier1Budget(0, options.Storage, tier2: null, NullLogger.Instance);
        var metadata = new ContainerMetadata(0, log, budget, options, NullLogger.Instance);
        var applier = new MetadataApplier(metadata);
        if (start)
        {
            log.Start(0, applier);
        }

        return (log, metadata, budget, applier);
    }

    [Fact]
    public async Task Nothing_is_accepted_while_the_log_is_not_running()
    {
        var (log, metadata, _, _) = Parts(new InMemoryDurableDataLog(), start: false);
        await using var pipeline = log;
        Assert.Equal(OutcomeStatus.ContainerUnavailable, metadata.Create(Segment, new OperationCompletion())!.Value.Status);
        var acceptance = metadata.TryAppend(Segment, WriterA, 0, 1, null, new ReadOnlySequence<byte>(Events("x")), new OperationCompletion(), 0, out var outcome);
        Assert.Equal((AppendAcceptance.Completed, OutcomeStatus.ContainerUnavailable), (acceptance, outcome.Status));
        Assert.Equal(0, metadata.SegmentCount);
    }

    [Fact]
    public async Task The_accepted_view_moves_at_once_and_the_durable_view_once_the_frame_is_durable()
    {
        var durable = new InMemoryDurableDataLog();
        var (log, metadata, budget, _) = Parts(durable);
        await using var pipeline = log;
        var created = new OperationCompletion();
        Assert.Null(metadata.Create(Segment, created));
        Assert.True((await created.Task).IsSuccess);
        var segment = metadata.FindDurable(Segment)!;

        durable.Gate = new TaskCompletionSource();
        var block = Events("pending");
        var appended = new OperationCompletion();
        Assert.Equal(AppendAcceptance.Accepted, metadata.TryAppend(Segment, WriterA, 0, 1, null, new ReadOnlySequence<byte>(block), appended, 0, out _));
        Assert.Equal((block.Length, 0L), (segment.PendingLength, segment.Length));
        Assert.Equal(block.Length, budget.Bytes);

        // Conditions are checked against the accepted view: the next append must expect the pending length.
        var stale = metadata.TryAppend(Segment, WriterA, 1, 1, 0, new ReadOnlySequence<byte>(block), new OperationCompletion(), 0, out var refused);
        Assert.Equal((AppendAcceptance.Completed, OutcomeStatus.ConditionFailed), (stale, refused.Status));

        durable.Gate.SetResult();
        Assert.Equal(block.Length, (await appended.Task.WaitAsync(TimeSpan.FromSeconds(5))).SegmentLength);
        Assert.Equal(block.Length, segment.Length);
    }

    [Fact]
    public async Task A_durable_deletion_reports_the_segments_chunks_and_releases_its_budget()
    {
        var (log, metadata, budget, applier) = Parts(new InMemoryDurableDataLog());
        await using var pipeline = log;
        var created = new OperationCompletion();
        metadata.Create(Segment, created);
        await created.Task;
        var segment = metadata.FindDurable(Segment)!;
        var block = Events("in tier 2", "and not");
        var appended = new OperationCompletion();
        metadata.TryAppend(Segment, WriterA, 1, 2, null, new ReadOnlySequence<byte>(block), appended, 0, out _);
        await appended.Task;

        var chunk = new ChunkInfo("containers/0/segments/1/0000000000000000000.e1", 0, 10, 0);
        var flushed = new OperationCompletion();
        Assert.Null(metadata.AcceptFlush(segment, chunk, flushed));
        Assert.True((await flushed.Task).IsSuccess);
        Assert.Equal((10L, block.Length - 10L), (segment.DurableStorageLength, budget.Bytes));
        Assert.Equal(chunk, metadata.FindChunk(segment, 5));

        var deleted = new OperationCompletion();
        Assert.Null(metadata.Mutate(Segment, OperationType.Delete, 0, deleted));
        Assert.True((await deleted.Task).IsSuccess);
        Assert.Equal(0, budget.Bytes);
        var gone = Assert.Single(applier.Deleted);
        Assert.Equal((segment.Id, chunk), (gone.SegmentId, Assert.Single(gone.Chunks)));
        Assert.Null(metadata.FindDurable(Segment));
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
}
