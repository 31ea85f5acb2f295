using System.Buffers;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore;

/// <summary>
/// A container's metadata: its segments by name and id, each with an accepted view (operations in the log, durable or
/// not: new operations are validated against it) and a durable view (what readers see and what survives a crash).
/// <para>
/// Contract: every mutation is validated here and handed to the <see cref="IOperationLog"/> in the same critical
/// section, so the log's order is the order of acceptance; the durable view changes only in
/// <see cref="ApplyDurable"/> and during recovery. It never writes to Tier 2, never reads data, and answers nothing
/// itself once an operation is in the log: the log answers it. Its lock is taken before the operation log's, never after.
/// </para>
/// </summary>
internal interface IContainerMetadata
{
    /// <summary>Segments whose creation is accepted.</summary>
    int SegmentCount { get; }

    /// <summary>Validates a block of events and hands it to the log; see <see cref="SegmentContainer.TryAppend"/>.</summary>
    AppendAcceptance TryAppend(
        string segmentName, Guid writer, long lastEventNumber, int eventCount, long? expectedOffset, in ReadOnlySequence<byte> data,
        IOperationCallback callback, long token, out OperationOutcome outcome, ulong keySample = 0);

    /// <summary>Answers, through the callback, with the writer's durable event number once everything accepted before is durable; or returns the answer now.</summary>
    OperationOutcome? SetupAppend(string segmentName, Guid writer, IOperationCallback callback, long token);

    /// <summary>Accepts a segment's creation (answered through the callback), starting its load at <paramref name="seed"/>, or returns why not.</summary>
    OperationOutcome? Create(string name, IOperationCallback callback, Load.LoadState? seed = null);

    /// <summary>
    /// Accepts the replacement of the named writers' inherited ranges (a logged operation, answered through the
    /// callback once durable), or returns why not. Their own event numbers are untouched.
    /// </summary>
    OperationOutcome? Inherit(string name, IReadOnlyList<(Guid Writer, InheritedRange[] Ranges)> writers, IOperationCallback callback);

    /// <summary>Whether the durable segment is sealed and its writers' records; null if there is no such segment.</summary>
    (bool Sealed, List<WriterRecord> Writers)? WriterRecords(string name);

    /// <summary>What an append setup tells a writer: the segment is sealed, its last durable event number, what it inherited.</summary>
    (bool Sealed, long LastEventNumber, IReadOnlyList<InheritedRange> Inherited) DescribeWriter(string name, Guid writer);

    /// <summary>Accepts a seal, truncation (at <paramref name="offset"/>) or deletion (answered through the callback), or returns why not.</summary>
    OperationOutcome? Mutate(string name, OperationType type, long offset, IOperationCallback callback);

    /// <summary>Accepts the record of a chunk already whole in Tier 2 (the storage writer's), or returns why not.</summary>
    OperationOutcome? AcceptFlush(SegmentMetadata segment, ChunkInfo chunk, IOperationCallback callback);

    /// <summary>
    /// Snapshots the accepted state into a checkpoint whose frame takes its place in the log now; it is serialized off
    /// the lock by <paramref name="paginate"/>. Writers idle past <see cref="ContainerOptions.WriterExpiry"/> are forgotten
    /// in the live state and the snapshot alike.
    /// </summary>
    OperationOutcome? AcceptCheckpoint(long checkpointId, Func<ContainerCheckpoint, List<DataFrameBuilder>> paginate, IOperationCallback callback);

    /// <summary>The segment if its creation is durable, else null.</summary>
    SegmentMetadata? FindDurable(string name);

    /// <summary>Names of the segments whose creation is durable.</summary>
    IReadOnlyList<string> ListSegments();

    /// <summary>The segment's Tier 2 chunk holding <paramref name="offset"/>, or null.</summary>
    ChunkInfo? FindChunk(SegmentMetadata segment, long offset);

    /// <summary>The segment's accepted storage length, durable length and start offset, read together.</summary>
    (long StorageLength, long Length, long StartOffset) StorageView(SegmentMetadata segment);

    /// <summary>Forgets the first <paramref name="count"/> chunks of a segment (deleted from Tier 2 after a truncation).</summary>
    void RemoveChunks(SegmentMetadata segment, int count);

    /// <summary>
    /// Runs <paramref name="visit"/> for every live segment under the metadata's lock (for the storage writer's scans).
    /// The visitor must be short and must not call any other part.
    /// </summary>
    void ForEachSegment<TState>(TState state, Action<SegmentMetadata, TState> visit);

    /// <summary>
    /// Applies a durable frame's operations to the durable view and marks the frame applied; adds their answers, the
    /// segments that changed and the deletions (with their chunks). Returns whether the storage writer has new work
    /// (a seal, truncation or deletion).
    /// </summary>
    bool ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed, List<DeletedSegment> deleted);

    /// <summary>Replays one logged operation into both views (recovery). Returns true for appends.</summary>
    bool Replay(in DataFrame.Operation operation, ReadOnlyMemory<byte> frame, LogAddress address, string where, List<DeletedSegment> deleted);

    /// <summary>Replays a checkpoint: the state becomes exactly the checkpoint's (recovery).</summary>
    void ApplyCheckpoint(ContainerCheckpoint checkpoint);

    /// <summary>After recovery: starts every segment's flush age now; returns the bytes not in Tier 2.</summary>
    long ResetFlushAges();

    /// <summary>Wakes every reader waiting for a segment's durable view to change.</summary>
    void SignalAll();
}
