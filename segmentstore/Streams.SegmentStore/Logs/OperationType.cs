namespace Streams.SegmentStore.Logs;

/// <summary>The kinds of operations a container writes to its durable log. Values are part of the log format.</summary>
internal enum OperationType : byte
{
    CreateSegment = 1,
    Append = 2,
    Seal = 3,
    Truncate = 4,
    Delete = 5,

    /// <summary>A chunk of a segment was written to Tier 2: the segment id, then a <see cref="ChunkInfo"/>.</summary>
    StorageFlushed = 6,

    /// <summary>
    /// The container's whole metadata (<see cref="ContainerCheckpoint"/>) in one record; always the first operation of its
    /// frame. Written by earlier versions (their checkpoints stopped at the largest log record); still read.
    /// </summary>
    Checkpoint = 7,

    /// <summary>One page of a checkpoint (<see cref="CheckpointPages"/>): the pages of a checkpoint are consecutive frames.</summary>
    CheckpointPage = 8,
}
