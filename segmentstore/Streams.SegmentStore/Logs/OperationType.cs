namespace Streams.SegmentStore.Logs;

/// <summary>
/// The kinds of operations of a container: one enum for what is written to the durable log and what waits in the
/// operation log for it. Values 1 to 9 are part of the log format and never change; the barriers (0x80 and up) are
/// never written: they only answer once the operations before them are durable.
/// </summary>
public enum OperationType : byte
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

    /// <summary>
    /// Replaces the inherited ranges of some of a segment's writers (<see cref="WriterAndLoadRecords"/>): what they had
    /// written to its predecessors, copied in by the controller during a scale.
    /// </summary>
    InheritWriters = 9,

    /// <summary>Never in the log: answers an append setup once everything before it is durable.</summary>
    SetupBarrier = 0x80,

    /// <summary>Never in the log: acknowledges a re-sent block (or a repeated seal) once the original is durable.</summary>
    DuplicateBarrier = 0x81,
}
