using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// Records every failed write in the journal's <see cref="JournalFault"/> before FASTER hears of it, and removes no
/// file once a write failed (see <see cref="JournalFault"/> for why both).
/// </summary>
internal sealed class FaultRecordingDevice(IDevice inner, JournalFault fault) : DelegatingDevice(inner)
{
    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context) =>
        Inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, (errorCode, numBytes, ctx) =>
        {
            if (errorCode != 0)
            {
                fault.Set(new IOException($"Writing {numBytesToWrite} bytes at {destinationAddress} of {FileName}.{segmentId} failed with error {errorCode}."));
            }

            callback(errorCode, numBytes, ctx);
        }, context);

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result)
    {
        if (fault.Error is not null)
        {
            callback(result);
            return;
        }

        Inner.RemoveSegmentAsync(segment, callback, result);
    }

    public override void RemoveSegment(int segment)
    {
        if (fault.Error is null)
        {
            Inner.RemoveSegment(segment);
        }
    }
}
