using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

internal enum PendingKind : byte
{
    Create,
    Append,
    Seal,
    Truncate,
    Delete,

    /// <summary>A chunk was written to Tier 2 (Offset: the segment's new storage length; Length: the chunk's).</summary>
    StorageFlushed,

    /// <summary>The first page of a checkpoint (Segment: <see cref="SegmentMetadata.Container"/>; Offset: the checkpoint's id).</summary>
    CheckpointStart,

    /// <summary>The last page of a checkpoint (Segment: <see cref="SegmentMetadata.Container"/>; Offset: the checkpoint's id).</summary>
    Checkpoint,

    /// <summary>No log bytes: answers an append setup once everything before it is durable.</summary>
    SetupBarrier,

    /// <summary>No log bytes: acknowledges a re-sent block once the original is durable.</summary>
    DuplicateBarrier,
}

/// <summary>An operation accepted into a frame, waiting for the frame to become durable.</summary>
internal struct PendingOperation
{
    public PendingKind Kind;
    public SegmentMetadata Segment;
    public long Offset;
    public int Length;
    public int FrameOffset;
    public Guid Writer;
    public long EventNumber;
    public int EventCount;
    public IOperationCallback? Callback;
    public long Token;
}

/// <summary>A frame on its way to the log, with the operations to apply once it is durable.</summary>
internal sealed class PendingFrame
{
    public PendingFrame(DataFrameBuilder builder)
    {
        Builder = builder;
    }

    public DataFrameBuilder Builder { get; }

    public List<PendingOperation> Operations { get; } = [];

    public bool HasAppends { get; set; }

    /// <summary>The sealed record bytes; set when the frame is handed to the log.</summary>
    public ReadOnlyMemory<byte> Record { get; set; }

    public Task<LogAddress>? Write { get; set; }

    /// <summary>
    /// For a checkpoint: its pages, one frame each, being serialized off the container's lock from a snapshot taken at
    /// this frame's place in the log. The writer writes them as consecutive records in this frame's turn; the frame's
    /// address is its first page's. Null for an ordinary frame.
    /// </summary>
    public Task<List<DataFrameBuilder>>? CheckpointPages { get; set; }

    /// <summary>Stopwatch timestamp of the hand-off to the log.</summary>
    public long WriteStarted { get; set; }
}
