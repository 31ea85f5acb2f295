using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.Coordination.Metadata;

namespace Streams.Controller.Transactions;

/// <summary>
/// The merges of committing transactions (docs/transactions.md, "Merge" and "Scaling"): rounds of local merges, one
/// request per segment, and commits across a scale split by routing key.
/// </summary>
public sealed partial class TransactionService
{
    /// <summary>
    /// Merges a round of committing transactions (<see cref="TransactionCommitter"/>) and records them COMMITTED. In
    /// commit order: consecutive transactions that merge only into their own segments share one merge request per
    /// segment; one with segments a scale sealed (<see cref="TransactionRecord.Rerouted"/>) is merged on its own.
    /// </summary>
    internal async Task MergeRoundAsync(IReadOnlyList<TransactionRecord> batch, CancellationToken cancellationToken)
    {
        for (var i = 0; i < batch.Count;)
        {
            var end = i;
            while (end < batch.Count && batch[end].Rerouted is not { Count: > 0 })
            {
                end++;
            }

            if (end > i)
            {
                await MergeLocalAsync(batch.Skip(i).Take(end - i).ToList(), cancellationToken);
                i = end;
                continue;
            }

            await MergeLocalAsync([batch[i]], cancellationToken);
            await MergeReroutedAsync(batch[i], cancellationToken);
            i++;
        }

        var now = Now;
        foreach (var transaction in batch)
        {
            var committed = transaction with { State = TransactionRecordState.Committed, FinishedAtUnixMs = now };
            // COMMITTED is final and only follows COMMITTING, whoever drove the merges: no version to compare. The marker
            // goes in the same commit (unless another driver removed it first), so a scale never sees it outlive the commit.
            var set = new MetadataOp.Set(RecordPath(transaction.Scope, transaction.Stream, transaction.Id), Serialize(committed), -1);
            if (!await _store.TryCommitAsync([set, new MetadataOp.Delete(MarkerPath(transaction.Scope, transaction.Stream, transaction.Id))], cancellationToken))
            {
                await _store.TryCommitAsync([set], cancellationToken);
            }

            Finished.Add(1, new KeyValuePair<string, object?>("outcome", "committed"));
            CommitLatency.Record(Math.Max(0, now - transaction.CommittingAtUnixMs) / 1000.0);
        }
    }

    /// <summary>One merge request per segment for the transactions' own segments, its sources in commit order.</summary>
    private async Task MergeLocalAsync(IReadOnlyList<TransactionRecord> transactions, CancellationToken cancellationToken)
    {
        var bySegment = new SortedDictionary<long, List<string>>();
        foreach (var transaction in transactions)
        {
            var rerouted = transaction.Rerouted?.Select(r => r.Segment).ToHashSet() ?? [];
            foreach (var id in transaction.Touched.Where(id => !rerouted.Contains(id)))
            {
                var parent = SegmentName.FromId(transaction.Scope, transaction.Stream, id).ToString();
                if (!bySegment.TryGetValue(id, out var sources))
                {
                    bySegment[id] = sources = [];
                }

                sources.Add(TransactionName.Compose(parent, Guid.ParseExact(transaction.Id, "N")));
            }
        }

        if (bySegment.Count > 0)
        {
            var first = transactions[0];
            await Task.WhenAll(bySegment.Select(entry => WithRetriesAsync(
                SegmentName.FromId(first.Scope, first.Stream, entry.Key).ToString(), transactions,
                target => _segments.MergeSegmentsAsync(target, entry.Value, cancellationToken), cancellationToken)));
        }
    }

    /// <summary>
    /// A commit across a scale: each sealed segment's transaction segment is sealed, read, split by routing key among the
    /// segments that own its keys now (an event without a stored key goes to the first), each part appended to its
    /// segment as one block (idempotent), and the transaction segment deleted. Per key, the events land after everything
    /// written to the key before the commit, in their order.
    /// </summary>
    private async Task MergeReroutedAsync(TransactionRecord transaction, CancellationToken cancellationToken)
    {
        var (stream, _) = await _streams.GetStreamAsync(transaction.Scope, transaction.Stream, cancellationToken)
            ?? throw new InvalidOperationException($"Stream {transaction.Scope}/{transaction.Stream} vanished under a commit.");
        foreach (var reroute in transaction.Rerouted ?? [])
        {
            var source = TransactionName.Compose(SegmentName.FromId(transaction.Scope, transaction.Stream, reroute.Segment).ToString(), Guid.ParseExact(transaction.Id, "N"));
            var targets = reroute.Targets.Select(id =>
            {
                var named = SegmentName.FromId(transaction.Scope, transaction.Stream, id);
                var segment = stream.FindSegment(named.Number, named.Epoch)
                    ?? throw new InvalidOperationException($"Segment id {id} of {transaction.Scope}/{transaction.Stream} vanished under a commit.");
                return (Name: named.ToString(), segment.KeyStart, segment.KeyEnd);
            }).ToList();
            await WithRetriesAsync(source, [transaction], async _ =>
            {
                byte[] data;
                try
                {
                    await _segments.SealSegmentAsync(source, cancellationToken);
                    data = await _segments.ReadSealedAsync(source, cancellationToken);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
                {
                    return 0; // merged and deleted by an earlier attempt, or never written
                }

                var parts = SplitByKey(data, [.. targets.Select(t => (t.KeyStart, t.KeyEnd))]);
                await Task.WhenAll(parts.Select((part, index) => part.Events == 0 ? Task.CompletedTask : WithRetriesAsync(targets[index].Name, [transaction],
                    target => _segments.MergePartsAsync(target, [new MergePart { Source = source, Data = ByteString.CopyFrom(part.Bytes.ToArray()), EventCount = part.Events }], cancellationToken),
                    cancellationToken)));
                await _segments.DeleteSegmentAsync(source, cancellationToken);
                return parts.Count;
            }, cancellationToken);
        }
    }

    /// <summary>Framed events split among key ranges, in order within each: by the stored key's point; keyless ones to the first.</summary>
    internal static List<(MemoryStream Bytes, int Events)> SplitByKey(byte[] data, IReadOnlyList<(double Start, double End)> ranges)
    {
        var parts = ranges.Select(_ => (Bytes: new MemoryStream(), Events: 0)).ToList();
        var rest = new ReadOnlySequence<byte>(data);
        var offset = 0;
        while (EventFraming.TryReadEvent(ref rest, out var framed))
        {
            var index = 0;
            if (framed.HasKey)
            {
                var point = KeySpace.PointOf(framed.Key.IsSingleSegment ? framed.Key.FirstSpan : framed.Key.ToArray());
                for (var r = 0; r < ranges.Count; r++)
                {
                    if (ranges[r].Start <= point && point < ranges[r].End)
                    {
                        index = r;
                        break;
                    }
                }
            }

            parts[index].Bytes.Write(data, offset, framed.FrameLength);
            parts[index] = (parts[index].Bytes, parts[index].Events + 1);
            offset += framed.FrameLength;
        }

        if (!rest.IsEmpty)
        {
            throw new InvalidDataException($"A transaction segment ends inside an event ({rest.Length} bytes left over).");
        }

        return parts;
    }

    /// <summary>
    /// A decided commit never fails: its merges are retried (with back-off) until done, or until another driver (the
    /// leader's sweep, or the controller that decided it) has recorded every one of <paramref name="round"/> COMMITTED, or
    /// this controller stops.
    /// </summary>
    private async Task WithRetriesAsync(string target, IReadOnlyList<TransactionRecord> round, Func<string, Task<int>> merge, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await merge(target);
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (await AllCommittedAsync(round, cancellationToken))
                {
                    return;
                }

                var level = attempt < 5 ? LogLevel.Information : LogLevel.Warning;
                _logger.Log(level, "Merging {Count} transaction(s) into {Target} failed (attempt {Attempt}: {Error}); retrying in {Delay} ms.",
                    round.Count, target, attempt, e.Message, delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    private async Task<bool> AllCommittedAsync(IReadOnlyList<TransactionRecord> round, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var transaction in round)
            {
                if (await ReadAsync(transaction.Scope, transaction.Stream, transaction.Id, cancellationToken) is not { Record.State: TransactionRecordState.Committed })
                {
                    return false;
                }
            }

            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return false; // the metadata store is away too: keep retrying
        }
    }
}
