namespace Streams.SegmentStore.Logs;

/// <summary>The kinds of operations a container writes to its durable log. Values are part of the log format.</summary>
internal enum OperationType : byte
{
    CreateSegment = 1,
    Append = 2,
    Seal = 3,
    Truncate = 4,
    Delete = 5,
}
