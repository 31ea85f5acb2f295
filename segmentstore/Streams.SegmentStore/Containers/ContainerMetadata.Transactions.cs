using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// Transaction segments in the metadata (docs/transactions.md): their bound, their creation by a writer's setup, the
/// left-overs the container expires, and the merge writer records their parents forget once they are gone.
/// </summary>
internal sealed partial class ContainerMetadata
{
    /// <summary>
    /// The most a transaction segment holds: what one append block (one log record) carries, so that its merge into
    /// the parent is one operation, all visible at once.
    /// </summary>
    public long MaxTransactionSegmentBytes => _log.MaxRecordSize - DataFrame.HeaderSize - DataFrame.AppendOverhead - DataFrame.TrailerSize;

    /// <summary>
    /// A transaction's segment is created by its first writer's setup (lock held): lazily, so a transaction pays only for
    /// the segments it writes. Its parent must exist here; it may be sealed (a scale since the transaction began: the
    /// commit then splits the transaction segment among the parent's successors by key).
    /// </summary>
    private bool TryCreateTransaction(string name, out SegmentMetadata segment, ref OperationOutcome? missing)
    {
        segment = null!;
        if (missing is not { Status: OutcomeStatus.NoSuchSegment } || !Common.Naming.TransactionName.TryParse(name, out var parent, out _))
        {
            return false;
        }

        if (!_byName.ContainsKey(parent.Value.ToString()))
        {
            missing = OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Transaction segment {name} cannot be created: its parent {parent.Value} does not exist.");
            return false;
        }

        if (_transactionSegments >= _options.MaxTransactionSegments)
        {
            missing = OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                $"Container {_containerId} holds {_transactionSegments} transaction segments, its limit (SegmentStore:MaxTransactionSegments); commit or abort transactions first.");
            return false;
        }

        segment = new SegmentMetadata(_nextSegmentId, name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (Add(new PendingOperation { Type = OperationType.CreateSegment, Segment = segment }) is { } refused)
        {
            missing = refused;
            return false;
        }

        Register(segment);
        _transactionSegments++;
        return true;
    }

    /// <summary>Transaction segments of the container (accepted view).</summary>
    public int TransactionSegmentCount
    {
        get
        {
            lock (_sync)
            {
                return _transactionSegments;
            }
        }
    }

    /// <summary>Names of the unsealed transaction segments created before <paramref name="createdBeforeUnixMs"/>.</summary>
    public List<string> TransactionSegmentsCreatedBefore(long createdBeforeUnixMs)
    {
        lock (_sync)
        {
            // A sealed one is being merged (a merge seals its sources first): never expired, whatever its age.
            return [.. _byName.Values.Where(s => s.IsTransaction && !s.PendingDeleted && !s.PendingSealed && s.CreatedAtUnixMs < createdBeforeUnixMs).Select(s => s.Name)];
        }
    }

    /// <summary>
    /// The writer id a transaction segment's merge block carries on its parent: a hash of the source's name, the same on
    /// every attempt, so a repeated merge is a duplicate.
    /// </summary>
    internal static Guid MergeWriterOf(string source) => new(System.IO.Hashing.XxHash128.Hash(System.Text.Encoding.UTF8.GetBytes(source)));

    /// <summary>
    /// Once a transaction segment's deletion is durable, its merge block can never come again (a repeat finds no source),
    /// so its parent forgets the writer record that deduplicated it: a busy segment would otherwise keep one per
    /// transaction for a day and crowd out real writers. Lock held; the same on replay.
    /// </summary>
    private void ForgetMergeWriter(SegmentMetadata deleted)
    {
        if (deleted.IsTransaction && _byName.TryGetValue(Common.Naming.TransactionName.ParentOf(deleted.Name), out var parent))
        {
            parent.Forget(MergeWriterOf(deleted.Name));
        }
    }
}
