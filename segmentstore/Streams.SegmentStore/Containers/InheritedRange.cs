namespace Streams.SegmentStore.Containers;

/// <summary>
/// What a writer had written to a segment's predecessors in one key range: an event of that writer whose routing key
/// falls in [KeyStart, KeyEnd) and whose number is at most <see cref="LastEventNumber"/> is already in the stream.
/// </summary>
public readonly record struct InheritedRange(double KeyStart, double KeyEnd, long LastEventNumber);

/// <summary>A writer's record on a segment: its own last durable event number (-1 if none) and what it inherited.</summary>
public sealed record WriterRecord(Guid Writer, long LastEventNumber, IReadOnlyList<InheritedRange> Inherited);
