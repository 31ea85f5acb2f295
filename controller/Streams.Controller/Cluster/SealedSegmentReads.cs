using Grpc.Core;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Cluster;

/// <summary>Reads a sealed segment whole through any carrier's read call (the controller's admins share it).</summary>
public static class SealedSegmentReads
{
    /// <summary>Most bytes read this way: a transaction segment holds at most one log record.</summary>
    public const int MaxBytes = 16 * 1024 * 1024;

    public static async Task<byte[]> ReadAsync(
        string segment, Func<long, CancellationToken, Task<ReadSegmentReply>> read, Func<CancellationToken, Task<SegmentInfo>> info, CancellationToken cancellationToken)
    {
        var segmentInfo = await info(cancellationToken);
        if (!segmentInfo.Sealed)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"{segment} is not sealed; only a sealed segment is read whole."));
        }

        var length = segmentInfo.Length - segmentInfo.StartOffset;
        if (length > MaxBytes)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"{segment} holds {length} bytes, more than {MaxBytes} read whole."));
        }

        var data = new byte[length];
        var filled = 0;
        while (filled < length)
        {
            var reply = await read(segmentInfo.StartOffset + filled, cancellationToken);
            if (reply.Status != ReadStatus.Ok || reply.Data.IsEmpty)
            {
                throw new RpcException(new Status(StatusCode.DataLoss, $"Reading {segment} at {segmentInfo.StartOffset + filled} answered {reply.Status} before its sealed length {segmentInfo.Length}."));
            }

            reply.Data.Span[..(int)Math.Min(reply.Data.Length, length - filled)].CopyTo(data.AsSpan(filled));
            filled += reply.Data.Length;
        }

        return data;
    }
}
