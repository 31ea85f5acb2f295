using Streams.Common.Naming;
using Streams.SegmentStore.Containers;
using Streams.Testing;
using Streams.Tier2;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>
/// Transaction segments in a container: created by the first writer's setup, bounded to one block, merged into their
/// parent as one block (all of it visible at once), idempotently, and gone afterwards in both tiers.
/// </summary>
public sealed class TransactionMergeTests
{
    private static readonly Guid TxnA = Guid.Parse("0a0a0a0a-0000-0000-0000-00000000000a");
    private static readonly Guid TxnB = Guid.Parse("0b0b0b0b-0000-0000-0000-00000000000b");

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static string Txn(Guid id) => TransactionName.Compose(Segment, id);

    private static async Task<OperationOutcome> SetupAsync(SegmentContainer container, string segment, Guid writer)
    {
        var setup = new OperationCompletion();
        container.SetupAppend(segment, writer, setup, 0);
        return await setup.Task;
    }

    [Fact]
    public async Task A_setup_creates_the_transaction_segment_and_a_merge_moves_it_into_the_parent_once()
    {
        var log = new InMemoryDurableDataLog();
        await using (var container = await StartWithSegmentAsync(log))
        {
            Assert.True((await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("before"), Token)).IsSuccess);
            Assert.Null(container.GetInfo(Txn(TxnA)));
            Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
            Assert.NotNull(container.GetInfo(Txn(TxnA)));
            Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, 1, 2, null, Events("a1", "a2"), Token)).IsSuccess);
            Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, 2, 1, null, Events("a3"), Token)).IsSuccess);
            Assert.True((await SetupAsync(container, Txn(TxnB), TxnB)).IsSuccess);
            Assert.True((await container.AppendAsync(Txn(TxnB), TxnB, 0, 1, null, Events("b1"), Token)).IsSuccess);

            // Nothing of either is in the parent until the merge.
            Assert.Equal(["before"], await ReadAllEventsAsync(container));
            var (outcome, merged) = await container.MergeAsync(Segment, [Txn(TxnA), Txn(TxnB)], Token);
            Assert.True(outcome.IsSuccess, outcome.Message);
            Assert.Equal(2, merged);
            Assert.Equal(["before", "a1", "a2", "a3", "b1"], await ReadAllEventsAsync(container));
            Assert.Null(container.GetInfo(Txn(TxnA)));
            Assert.Null(container.GetInfo(Txn(TxnB)));

            // Again (a controller that did not hear the answer): nothing changes.
            (outcome, merged) = await container.MergeAsync(Segment, [Txn(TxnA), Txn(TxnB)], Token);
            Assert.True(outcome.IsSuccess, outcome.Message);
            Assert.Equal(0, merged);
            Assert.Equal(["before", "a1", "a2", "a3", "b1"], await ReadAllEventsAsync(container));
        }

        // The replayed log holds the same: the merge and the deletions are logged operations.
        await using var recovered = Create(new InMemoryDurableDataLog(log.Records));
        await recovered.StartAsync(Token);
        Assert.Equal(["before", "a1", "a2", "a3", "b1"], await ReadAllEventsAsync(recovered));
        Assert.Null(recovered.GetInfo(Txn(TxnA)));
    }

    [Fact]
    public async Task A_merge_repeated_before_the_source_was_deleted_is_dropped_as_a_duplicate()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithSegmentAsync(log);
        Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
        Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, 0, 2, null, Events("a1", "a2"), Token)).IsSuccess);

        // What a merge that crashed between its append and its delete left: the block in the parent, the source sealed.
        Assert.True((await container.SealSegmentAsync(Txn(TxnA), Token)).IsSuccess);
        var source = container.GetInfo(Txn(TxnA))!;
        Assert.True((await container.AppendAsync(Segment, SegmentContainer.MergeWriterOf(Txn(TxnA)), 0, 2, null, Events("a1", "a2"), Token)).IsSuccess);
        Assert.Equal(source.Length, container.GetInfo(Segment)!.Length);

        var (outcome, _) = await container.MergeAsync(Segment, [Txn(TxnA)], Token);
        Assert.True(outcome.IsSuccess, outcome.Message);
        Assert.Equal(["a1", "a2"], await ReadAllEventsAsync(container));
        Assert.Null(container.GetInfo(Txn(TxnA)));
    }

    [Fact]
    public async Task Transactions_of_a_missing_parent_are_refused_a_sealed_one_takes_them_and_a_merge_checks_its_sources()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var orphan = TransactionName.Compose("scope/stream/9.#epoch.0", TxnA);
        Assert.Equal(OutcomeStatus.NoSuchSegment, (await SetupAsync(container, orphan, TxnA)).Status);
        Assert.Null(container.GetInfo(orphan));

        Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
        Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, 0, 1, null, Events("a1"), Token)).IsSuccess);
        var (wrong, _) = await container.MergeAsync(Segment, [TransactionName.Compose("scope/stream/1.#epoch.0", TxnA)], Token);
        Assert.Equal(OutcomeStatus.InvalidArgument, wrong.Status);
        var (notTxn, _) = await container.MergeAsync(Segment, ["scope/stream/1.#epoch.0"], Token);
        Assert.Equal(OutcomeStatus.InvalidArgument, notTxn.Status);

        // A scale sealed the parent: a transaction still writes under it (its commit goes to the successors by key).
        Assert.True((await container.SealSegmentAsync(Segment, Token)).IsSuccess);
        Assert.True((await SetupAsync(container, Txn(TxnB), TxnB)).IsSuccess);
        Assert.True((await container.AppendAsync(Txn(TxnB), TxnB, 0, 1, null, Events("b1"), Token)).IsSuccess);
        var (intoSealed, _) = await container.MergeAsync(Segment, [Txn(TxnA)], Token);
        Assert.Equal(OutcomeStatus.SegmentSealed, intoSealed.Status);
        Assert.Empty(await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task A_transaction_segment_holds_at_most_what_one_merge_carries()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
        var limit = container.MaxTransactionSegmentBytes;
        var big = Events(new string('x', 4 << 20));
        long number = 0;
        while (container.GetInfo(Txn(TxnA))!.Length + big.Length <= limit)
        {
            Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, number++, 1, null, big, Token)).IsSuccess);
        }

        var refused = await container.AppendAsync(Txn(TxnA), TxnA, number, 1, null, big, Token);
        Assert.Equal(OutcomeStatus.InvalidArgument, refused.Status);
        Assert.Contains("at most", refused.Message);

        // What it holds still merges, as one block.
        var length = container.GetInfo(Txn(TxnA))!.Length;
        var (outcome, merged) = await container.MergeAsync(Segment, [Txn(TxnA)], Token);
        Assert.True(outcome.IsSuccess, outcome.Message);
        Assert.Equal((1, length), (merged, container.GetInfo(Segment)!.Length));
    }

    [Fact]
    public async Task A_transaction_flushed_to_tier2_merges_from_there_and_leaves_no_chunk_behind()
    {
        using var directory = new TempDirectory("txn-tier2");
        var tier2 = ChunkStorageFactory.Open("file://" + directory.Path);
        var log = new InMemoryDurableDataLog();
        await using var container = CreateWithTier2(tier2, log, Options(), 64 * 1024);
        await container.StartAsync(Token);
        Assert.True((await container.CreateSegmentAsync(Segment, Token)).IsSuccess);
        Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
        for (var n = 0; n < 300; n++)
        {
            Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, n, 1, null, Event(n), Token)).IsSuccess);
        }

        await WaitUntilAsync(() => container.UnflushedBytes == 0, "the transaction segment is in Tier 2");
        // Only the transaction segment holds data: every chunk is in its directory (chunks are named by segment id).
        var chunks = await ListChunksAsync(tier2, "containers/0/segments/");
        Assert.NotEmpty(chunks);
        var transactionChunks = chunks[0][..(chunks[0].LastIndexOf('/') + 1)];
        Assert.All(chunks, c => Assert.StartsWith(transactionChunks, c));

        var (outcome, merged) = await container.MergeAsync(Segment, [Txn(TxnA)], Token);
        Assert.True(outcome.IsSuccess, outcome.Message);
        Assert.Equal(1, merged);
        var events = await ReadAllEventsAsync(container);
        Assert.Equal(300, events.Count);
        Assert.Equal([.. Enumerable.Range(0, 300).Select(n => n.ToString("D8", System.Globalization.CultureInfo.InvariantCulture))], events.Select(e => e[..8]));
        await WaitUntilAsync(() => ListChunksAsync(tier2, transactionChunks).Result.Count == 0, "the merged transaction's chunks are deleted from Tier 2");
    }

    [Fact]
    public async Task Parts_of_other_segments_transactions_are_appended_once_each_and_checked()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var source = TransactionName.Compose("scope/stream/7.#epoch.0", TxnA);
        var part = Events("p1", "p2");
        var (outcome, merged) = await container.MergePartsAsync(Segment, [(source, part, 2)], Token);
        Assert.True(outcome.IsSuccess, outcome.Message);
        Assert.Equal(1, merged);
        (outcome, _) = await container.MergePartsAsync(Segment, [(source, part, 2)], Token);
        Assert.True(outcome.IsSuccess, outcome.Message);
        Assert.Equal(["p1", "p2"], await ReadAllEventsAsync(container));

        var otherStream = TransactionName.Compose("scope/other/7.#epoch.0", TxnB);
        Assert.Equal(OutcomeStatus.InvalidArgument, (await container.MergePartsAsync(Segment, [(otherStream, part, 2)], Token)).Outcome.Status);
        Assert.Equal(OutcomeStatus.InvalidArgument, (await container.MergePartsAsync(Segment, [(TransactionName.Compose("scope/stream/8.#epoch.0", TxnB), part, 3)], Token)).Outcome.Status);
        Assert.Equal(["p1", "p2"], await ReadAllEventsAsync(container));
    }

    [Fact]
    public async Task Transaction_segments_are_bounded_per_container_and_left_overs_expire()
    {
        var log = new InMemoryDurableDataLog();
        var options = new ContainerOptions { MaxTransactionSegments = 2, TransactionSegmentExpiry = TimeSpan.FromHours(25) };
        var third = Guid.Parse("0c0c0c0c-0000-0000-0000-00000000000c");
        await using (var container = await StartWithSegmentAsync(log, options: options))
        {
            Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
            Assert.True((await SetupAsync(container, Txn(TxnB), TxnB)).IsSuccess);
            var refused = await SetupAsync(container, Txn(third), third);
            Assert.Equal(OutcomeStatus.InvalidArgument, refused.Status);
            Assert.Contains("MaxTransactionSegments", refused.Message);
            Assert.Null(container.GetInfo(Txn(third)));

            Assert.True((await container.MergeAsync(Segment, [Txn(TxnA)], Token)).Outcome.IsSuccess);
            Assert.Equal(1, container.TransactionSegmentCount);
            Assert.True((await SetupAsync(container, Txn(third), third)).IsSuccess);
            Assert.Equal(2, container.TransactionSegmentCount);
        }

        // After a replay the count is the same, and segments older than the expiry go (the parent stays).
        await using var recovered = Create(new InMemoryDurableDataLog(log.Records), options: options);
        await recovered.StartAsync(Token);
        Assert.Equal(2, recovered.TransactionSegmentCount);
        Assert.Equal(0, await recovered.ExpireTransactionSegmentsAsync(DateTimeOffset.UtcNow, Token));
        Assert.Equal(2, await recovered.ExpireTransactionSegmentsAsync(DateTimeOffset.UtcNow.AddHours(26), Token));
        Assert.Equal(0, recovered.TransactionSegmentCount);
        Assert.Null(recovered.GetInfo(Txn(TxnB)));
        Assert.NotNull(recovered.GetInfo(Segment));
    }

    [Fact]
    public async Task A_merged_sources_dedup_record_goes_with_it_and_a_late_repeat_into_a_sealed_parent_is_a_no_op()
    {
        var log = new InMemoryDurableDataLog();
        await using (var container = await StartWithSegmentAsync(log))
        {
            Assert.True((await container.AppendAsync(Segment, WriterA, 0, 1, null, Events("own"), Token)).IsSuccess);
            Assert.True((await SetupAsync(container, Txn(TxnA), TxnA)).IsSuccess);
            Assert.True((await container.AppendAsync(Txn(TxnA), TxnA, 0, 1, null, Events("a1"), Token)).IsSuccess);
            Assert.True((await container.MergeAsync(Segment, [Txn(TxnA)], Token)).Outcome.IsSuccess);

            // Only the segment's own writer is remembered: the merge's record went with its source.
            var writers = container.GetWriterRecords(Segment)!.Value.Writers;
            Assert.Equal([WriterA], writers.Select(w => w.Writer));

            // A second driver repeats the merge after a scale sealed the parent: nothing to do, not an error.
            Assert.True((await container.SealSegmentAsync(Segment, Token)).IsSuccess);
            var (outcome, merged) = await container.MergeAsync(Segment, [Txn(TxnA)], Token);
            Assert.True(outcome.IsSuccess, outcome.Message);
            Assert.Equal(0, merged);
            Assert.Equal(["own", "a1"], await ReadAllEventsAsync(container));
        }

        await using var recovered = Create(new InMemoryDurableDataLog(log.Records));
        await recovered.StartAsync(Token);
        Assert.Equal([WriterA], recovered.GetWriterRecords(Segment)!.Value.Writers.Select(w => w.Writer));
    }
}
