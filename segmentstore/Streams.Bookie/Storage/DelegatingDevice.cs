using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// A FASTER device that forwards every operation to another one; decorators override what they add to.
/// <para>
/// It derives from <see cref="StorageDeviceBase"/> so that the address-to-segment mapping and the segment range
/// bookkeeping (truncation calls <see cref="RemoveSegmentAsync"/> once per removed segment) stay FASTER's own; the
/// inner device is initialised with the same segment size and sees segmented calls only.
/// </para>
/// </summary>
internal abstract class DelegatingDevice(IDevice inner) : StorageDeviceBase(inner.FileName, inner.SectorSize, inner.Capacity)
{
    protected IDevice Inner { get; } = inner;

    public override void Initialize(long segmentSize, LightEpoch? epoch = null, bool omitSegmentIdFromFilename = false)
    {
        base.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);
        Inner.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);
    }

    public override bool Throttle() => Inner.Throttle();

    public override bool TryComplete() => Inner.TryComplete();

    public override long GetFileSize(int segment) => Inner.GetFileSize(segment);

    public override void Reset() => Inner.Reset();

    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context) =>
        Inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context);

    public override void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context) =>
        Inner.ReadAsync(segmentId, sourceAddress, destinationAddress, readLength, callback, context);

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result) =>
        Inner.RemoveSegmentAsync(segment, callback, result);

    public override void RemoveSegment(int segment) => Inner.RemoveSegment(segment);

    public override void Dispose() => Inner.Dispose();
}
