using FASTER.core;
using Streams.Bookie.Storage;

namespace Streams.Bookie.Tests.Storage;

/// <summary>The real FASTER device behind a <see cref="PowerCutDisk"/> (the model is described there).</summary>
internal sealed class PowerCutDevice(IDevice real, PowerCutDisk disk) : DelegatingDevice(real)
{
    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
    {
        // FASTER's segment file names (StorageDeviceBase.GetSegmentFilename).
        if (!disk.TryAccept($"{FileName}.{segmentId}", out var delay))
        {
            _ = Task.Run(() => callback(0, numBytesToWrite, context)); // lost, unbeknown to the process
            return;
        }

        // FASTER keeps the source buffer (sector-aligned, as O_DIRECT needs) until the callback, so it is not copied.
        _ = Task.Run(async () =>
        {
            await Task.Delay(delay);
            if (!disk.TryStartWrite())
            {
                callback(0, numBytesToWrite, context);
                return;
            }

            Inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, (errorCode, numBytes, ctx) =>
            {
                disk.EndWrite();
                callback(errorCode, numBytes, ctx);
            }, context);
        });
    }

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result)
    {
        if (disk.IsOff)
        {
            callback(result);
            return;
        }

        Inner.RemoveSegmentAsync(segment, callback, result);
    }

    public override void RemoveSegment(int segment)
    {
        if (!disk.IsOff)
        {
            Inner.RemoveSegment(segment);
        }
    }
}
