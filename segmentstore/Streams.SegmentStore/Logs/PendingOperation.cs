using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// An operation accepted into a frame, waiting for the frame to become durable. <see cref="Offset"/> is the append's
/// offset, the seal's length, the truncation's new start, or a flush's new storage length; <see cref="Length"/> the
/// append's or the flushed chunk's length.
/// </summary>
public struct PendingOperation
{
    public OperationType Type;
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
