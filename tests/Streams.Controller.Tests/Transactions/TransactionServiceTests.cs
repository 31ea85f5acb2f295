using System.Buffers;
using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Hashing;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;
using Streams.Controller.Tests.Scaling;
using Streams.Controller.Tests.Streams;
using Streams.Controller.Transactions;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Controller.Tests.Transactions;

/// <summary>
/// Transactions on the controller over a real embedded metadata store and a recording segment store: the commit
/// decision, batched merges, leases, aborts, the bound on committing transactions, scales, and a second controller
/// finishing a commit whose driver went away.
/// </summary>
public sealed class TransactionServiceTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("transactions");
    private readonly RecordingSegmentStore _segments = new();
    private readonly ManualClock _clock = new(DateTimeOffset.UtcNow);
    private FileMetadataStore _store = null!;
    private ControllerService _controller = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _store = FileMetadataStore.Open(_dir.Path);
        _controller = new ControllerService(new StreamMetadataStore(_store), _segments, new Locator(),
            new ControllerOptions { CommitWait = TimeSpan.FromMilliseconds(300) }, NullLogger<ControllerService>.Instance);
        await _controller.CreateScopeAsync("shop", Token);
        await _controller.CreateStreamAsync("shop", "orders", new StreamConfiguration { Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = 2 } } }, Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _store.DisposeAsync();
        _dir.Dispose();
    }

    private TransactionService Service(TransactionOptions? options = null) =>
        new(_store, _segments, options ?? new TransactionOptions(), NullLogger<TransactionService>.Instance, _clock);

    private static TransactionRef Ref(BeginTransactionReply begun) =>
        new() { Scope = "shop", Stream = "orders", TransactionId = begun.Transaction.TransactionId };

    private static string TxnSegment(long segmentId, string id) =>
        TransactionName.Compose(SegmentName.FromId("shop", "orders", segmentId).ToString(), Guid.ParseExact(id, "N"));

    [Fact]
    public async Task A_commit_merges_each_touched_segment_and_ends_committed()
    {
        var service = Service();
        var begun = await service.BeginAsync("shop", "orders", 0, Token);
        Assert.Equal(TransactionState.Open, begun.Transaction.State);
        Assert.Equal(2, begun.Segments.Count);
        Assert.Equal(120_000, begun.Transaction.LeaseExpiresAtUnixMs - begun.Transaction.CreatedAtUnixMs);

        var touched = begun.Segments[1].SegmentId;
        var committed = await service.CommitAsync(Ref(begun), [touched], wait: true, Token);
        Assert.Equal(TransactionState.Committed, committed.State);
        var merge = Assert.Single(_segments.Merges);
        Assert.Equal(begun.Segments[1].Segment, merge.Target);
        Assert.Equal([TxnSegment(touched, begun.Transaction.TransactionId)], merge.Sources);
        Assert.Equal(0, await TransactionService.CommittingCountAsync(_store, "shop", "orders", Token));

        // Repeating the commit answers the same, merging nothing more; an abort now is refused.
        Assert.Equal(TransactionState.Committed, (await service.CommitAsync(Ref(begun), [touched], wait: true, Token)).State);
        Assert.Single(_segments.Merges);
        var refused = await Assert.ThrowsAsync<RpcException>(() => service.AbortAsync(Ref(begun), Token));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
    }

    [Fact]
    public async Task Concurrent_commits_are_batched_into_one_merge_per_segment_per_round_in_commit_order()
    {
        var service = Service(new TransactionOptions { CommitBatch = 100 });
        var begun = new List<BeginTransactionReply>();
        for (var i = 0; i < 250; i++)
        {
            begun.Add(await service.BeginAsync("shop", "orders", 0, Token));
        }

        var segmentIds = begun[0].Segments.Select(s => s.SegmentId).ToArray();
        _segments.HoldMerges = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var decided = new List<TransactionInfo>();
        foreach (var b in begun)
        {
            decided.Add(await service.CommitAsync(Ref(b), segmentIds, wait: false, Token));
        }

        Assert.All(decided, d => Assert.Equal(TransactionState.Committing, d.State));
        Assert.Equal(250, await TransactionService.CommittingCountAsync(_store, "shop", "orders", Token));
        var hold = _segments.HoldMerges;
        _segments.HoldMerges = null;
        hold.SetResult();
        var all = await Task.WhenAll(begun.Select(b => service.CommitAsync(Ref(b), segmentIds, wait: true, Token)));
        Assert.All(all, a => Assert.Equal(TransactionState.Committed, a.State));

        // 250 transactions over 2 segments: at most 3 rounds (the first holds one, while the rest queue) of 2 merges each.
        var merges = _segments.Merges.ToList();
        Assert.InRange(merges.Count, 2, 8);
        foreach (var id in segmentIds)
        {
            var sources = merges.Where(m => m.Target == SegmentName.FromId("shop", "orders", id).ToString()).SelectMany(m => m.Sources).ToList();
            Assert.Equal(begun.Select(b => TxnSegment(id, b.Transaction.TransactionId)), sources);
        }
    }

    [Fact]
    public async Task An_expired_lease_aborts_the_transaction_and_deletes_its_segments()
    {
        var service = Service();
        var begun = await service.BeginAsync("shop", "orders", 2000, Token);
        _clock.Advance(TimeSpan.FromSeconds(1.5));
        var pinged = await service.PingAsync(Ref(begun), 0, Token);
        Assert.Equal(_clock.GetUtcNow().ToUnixTimeMilliseconds() + 2000, pinged.LeaseExpiresAtUnixMs);
        _clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal(0, await service.SweepAsync(Token));

        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await service.SweepAsync(Token));
        var info = await service.GetAsync(Ref(begun), Token);
        Assert.Equal(TransactionState.Aborted, info.State);
        Assert.Contains("lease", info.AbortReason);
        foreach (var segment in begun.Segments)
        {
            Assert.Contains(TxnSegment(segment.SegmentId, begun.Transaction.TransactionId), _segments.Deleted);
        }

        var commit = await Assert.ThrowsAsync<RpcException>(() => service.CommitAsync(Ref(begun), [begun.Segments[0].SegmentId], true, Token));
        Assert.Equal(StatusCode.FailedPrecondition, commit.StatusCode);
        Assert.Contains("lease", commit.Status.Detail);
        Assert.Empty(_segments.Merges);

        // Forgotten after the retention of finished transactions.
        _clock.Advance(new TransactionOptions().FinishedRetention);
        await service.SweepAsync(Token);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => service.GetAsync(Ref(begun), Token))).StatusCode);
    }

    [Fact]
    public async Task Pings_never_keep_a_transaction_past_its_maximum_lifetime()
    {
        var service = Service(new TransactionOptions { LifetimeLeases = 3 });
        var begun = await service.BeginAsync("shop", "orders", 1000, Token);
        Assert.Equal(3000, begun.Transaction.MaxExpiresAtUnixMs - begun.Transaction.CreatedAtUnixMs);
        for (var i = 0; i < 5; i++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(700));
            if (i < 4)
            {
                Assert.True((await service.PingAsync(Ref(begun), 0, Token)).LeaseExpiresAtUnixMs <= begun.Transaction.MaxExpiresAtUnixMs);
            }
        }

        var ping = await Assert.ThrowsAsync<RpcException>(() => service.PingAsync(Ref(begun), 0, Token));
        Assert.Equal(StatusCode.FailedPrecondition, ping.StatusCode);
        Assert.Contains("maximum lifetime", ping.Status.Detail);
    }

    [Fact]
    public async Task Past_the_bound_of_committing_transactions_new_ones_are_refused()
    {
        var service = Service(new TransactionOptions { MaxCommittingPerStream = 2 });
        _segments.HoldMerges = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await service.BeginAsync("shop", "orders", 0, Token);
        var second = await service.BeginAsync("shop", "orders", 0, Token);
        await service.CommitAsync(Ref(first), [first.Segments[0].SegmentId], false, Token);
        await service.CommitAsync(Ref(second), [second.Segments[0].SegmentId], false, Token);
        var refused = await Assert.ThrowsAsync<RpcException>(() => service.BeginAsync("shop", "orders", 0, Token));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);

        _segments.HoldMerges.SetResult();
        _segments.HoldMerges = null;
        await service.CommitAsync(Ref(second), [], true, Token);
        await Waiting.UntilAsync(async () => await TransactionService.CommittingCountAsync(_store, "shop", "orders", Token) == 0, "both merged", TimeSpan.FromSeconds(10));
        Assert.Equal(TransactionState.Open, (await service.BeginAsync("shop", "orders", 0, Token)).Transaction.State);
    }

    [Fact]
    public async Task A_commit_across_a_scale_splits_the_transaction_by_key_and_a_scale_waits_for_a_decided_commit()
    {
        var service = Service();
        var before = await service.BeginAsync("shop", "orders", 0, Token);
        var first = before.Segments[0].SegmentId;
        // Keys of the first segment, [0, 0.5), on both sides of 0.25, and one event without a key.
        var keys = Enumerable.Range(0, 200).Select(i => $"key-{i}").Where(k => KeySpace.PointOf(k) < 0.5).Take(12).ToList();
        Assert.Contains(keys, k => KeySpace.PointOf(k) < 0.25);
        Assert.Contains(keys, k => KeySpace.PointOf(k) >= 0.25);
        var source = TxnSegment(first, before.Transaction.TransactionId);
        _segments.Contents[source] = Framed([.. keys.Select(k => (k, $"{k}:v")), (null, "no key")]);
        await _controller.ScaleStreamAsync("shop", "orders", [first], [new KeyRangeRecord(0, 0.25), new KeyRangeRecord(0.25, 0.5)], ControllerService.ManualReason, Token);

        var committed = await service.CommitAsync(Ref(before), [first], true, Token);
        Assert.Equal(TransactionState.Committed, committed.State);
        Assert.Empty(_segments.Merges);
        var parts = _segments.PartMerges.ToList();
        Assert.Equal(2, parts.Count);
        var successors = (await _controller.DescribeStreamAsync("shop", "orders", Token)).ActiveSegments.Where(s => s.KeyEnd <= 0.5).ToList();
        foreach (var successor in successors)
        {
            var part = Assert.Single(Assert.Single(parts, p => p.Target == successor.Segment).Parts);
            Assert.Equal(source, part.Source);
            var expected = keys.Where(k => KeySpace.PointOf(k) >= successor.KeyStart && KeySpace.PointOf(k) < successor.KeyEnd).Select(k => $"{k}:v").ToList();
            if (successor.KeyStart == 0)
            {
                expected.Add("no key");
            }

            Assert.Equal(expected, Payloads(part.Data.ToByteArray()));
            Assert.Equal(expected.Count, part.EventCount);
        }

        Assert.Contains(source, _segments.Deleted);

        // A commit decided before a scale: the scale seals nothing until it has merged.
        var during = await service.BeginAsync("shop", "orders", 0, Token);
        var last = during.Segments[^1].SegmentId;
        _segments.HoldMerges = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await service.CommitAsync(Ref(during), [last], false, Token);
        var lastName = SegmentName.FromId("shop", "orders", last).ToString();
        // A scale of other segments does not wait for it.
        var other = (await _controller.DescribeStreamAsync("shop", "orders", Token)).ActiveSegments.First(a => a.SegmentId != last);
        await _controller.ScaleStreamAsync("shop", "orders", [other.SegmentId], [new KeyRangeRecord(other.KeyStart, other.KeyEnd)], ControllerService.ManualReason, Token);
        var blocked = await Assert.ThrowsAsync<RpcException>(() => _controller.ScaleStreamAsync("shop", "orders", [last], [new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], ControllerService.ManualReason, Token));
        Assert.Equal(StatusCode.Unavailable, blocked.StatusCode);
        Assert.DoesNotContain(lastName, _segments.Sealed);

        _segments.HoldMerges.SetResult();
        _segments.HoldMerges = null;
        Assert.Equal(TransactionState.Committed, (await service.CommitAsync(Ref(during), [last], true, Token)).State);
        await _controller.ScaleStreamAsync("shop", "orders", [last], [new KeyRangeRecord(0.5, 0.75), new KeyRangeRecord(0.75, 1)], ControllerService.ManualReason, Token);
        Assert.Contains(lastName, _segments.Sealed);
        Assert.Equal(lastName, Assert.Single(_segments.Merges).Target);
    }

    private static byte[] Framed(IEnumerable<(string? Key, string Payload)> events)
    {
        var bytes = new List<byte>();
        foreach (var (key, payload) in events)
        {
            var body = Encoding.UTF8.GetBytes(payload);
            var keyBytes = key is null ? [] : Encoding.UTF8.GetBytes(key);
            var frame = new byte[EventFraming.FrameSize(body.Length, key is null ? -1 : keyBytes.Length)];
            EventFraming.Write(frame, body, keyBytes, key is not null);
            bytes.AddRange(frame);
        }

        return [.. bytes];
    }

    private static List<string> Payloads(byte[] data)
    {
        var payloads = new List<string>();
        var rest = new ReadOnlySequence<byte>(data);
        while (EventFraming.TryReadEvent(ref rest, out var e))
        {
            payloads.Add(Encoding.UTF8.GetString(e.Payload));
        }

        Assert.True(rest.IsEmpty);
        return payloads;
    }

    [Fact]
    public async Task The_leader_finishes_a_commit_whose_controller_went_away_and_clears_stray_markers()
    {
        var options = new TransactionOptions { StalledCommitAfter = TimeSpan.FromSeconds(5) };
        var crashed = Service(options);
        var begun = await crashed.BeginAsync("shop", "orders", 0, Token);
        _segments.HoldMerges = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await crashed.CommitAsync(Ref(begun), [begun.Segments[0].SegmentId], false, Token);

        // The deciding controller's merge never returns (it is gone); a stray marker of a vanished record lies there too.
        Assert.True(await _store.TryCreateAsync($"/transactions/shop/orders/committing/{Guid.NewGuid():N}", Array.Empty<byte>(), Token));
        var reachable = new RecordingSegmentStore();
        var leader = new TransactionService(_store, reachable, options, NullLogger<TransactionService>.Instance, _clock);
        Assert.Equal(1, await leader.SweepAsync(Token)); // the stray marker; the commit is not stalled yet
        Assert.Equal(1, await TransactionService.CommittingCountAsync(_store, "shop", "orders", Token));
        _clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(1, await leader.SweepAsync(Token));
        await Waiting.UntilAsync(async () => (await leader.GetAsync(Ref(begun), Token)).State == TransactionState.Committed, "the leader merged the stalled commit", TimeSpan.FromSeconds(10));
        Assert.Equal(0, await TransactionService.CommittingCountAsync(_store, "shop", "orders", Token));
        Assert.Equal(TxnSegment(begun.Segments[0].SegmentId, begun.Transaction.TransactionId), Assert.Single(Assert.Single(reachable.Merges).Sources));
        _segments.HoldMerges.SetResult();
    }

    [Fact]
    public async Task Bad_requests_get_clear_statuses()
    {
        var service = Service();
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => service.BeginAsync("shop", "missing", 0, Token))).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => service.BeginAsync("shop", "orders", 3_600_000, Token))).StatusCode);
        var bad = new TransactionRef { Scope = "shop", Stream = "orders", TransactionId = "not-an-id" };
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => service.GetAsync(bad, Token))).StatusCode);
        var unknown = new TransactionRef { Scope = "shop", Stream = "orders", TransactionId = Guid.NewGuid().ToString("N") };
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => service.CommitAsync(unknown, [], true, Token))).StatusCode);
        var begun = await service.BeginAsync("shop", "orders", 0, Token);
        var stranger = await Assert.ThrowsAsync<RpcException>(() => service.CommitAsync(Ref(begun), [SegmentName.ComposeId(7, 7)], true, Token));
        Assert.Equal(StatusCode.InvalidArgument, stranger.StatusCode);
        Assert.Equal(TransactionState.Aborted, (await service.AbortAsync(Ref(begun), Token)).State);
        Assert.Equal(TransactionState.Aborted, (await service.AbortAsync(Ref(begun), Token)).State);
        Assert.Single((await service.ListAsync("shop", "orders", Token)).Transactions);
    }
}
