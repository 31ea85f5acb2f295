using System.Buffers;
using Google.Protobuf;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Grpc.Client;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>
/// A connection on the gRPC carrier: one Append bidirectional call carries all appends, reads and info are
/// unary calls on the same HTTP/2 connection.
/// </summary>
internal sealed class GrpcSegmentStoreConnection : SegmentStoreConnection
{
    private readonly GrpcChannel _channel;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private GrpcCall<AppendRequestFrame, AppendReply>? _append;
    private Task? _appendReader;

    public GrpcSegmentStoreConnection(string uri, KeepAliveSettings keepAlive)
    {
        _channel = GrpcChannel.ForAddress(uri, new GrpcChannelOptions { KeepAlivePingDelay = keepAlive.Interval, KeepAlivePingTimeout = keepAlive.Timeout });
    }

    public override ValueTask SendSetupAsync(long requestId, Guid writerId, string segment, CancellationToken cancellationToken) =>
        WriteAsync(new AppendRequestFrame(new AppendRequest
        {
            Setup = new SetupAppend { RequestId = requestId, WriterId = ByteString.CopyFrom(writerId.ToByteArray()), Segment = segment },
        }), cancellationToken);

    public override ValueTask SendBlockAsync(AppendBlockHeader header, ReadOnlySequence<byte> data, CancellationToken cancellationToken) =>
        WriteAsync(new AppendRequestFrame(header, data), cancellationToken);

    public override async Task<SegmentReadReply> ReadAsync(string segment, long offset, int maxBytes, int waitMillis, CancellationToken cancellationToken)
    {
        var reply = await _channel.UnaryAsync(SegmentStoreApi.Read,
            new ReadSegmentRequest { Segment = segment, Offset = offset, MaxBytes = maxBytes, WaitMillis = waitMillis },
            new CallOptions(CancellationToken: cancellationToken));
        return new SegmentReadReply(new ReadReplyHeader(0, reply.Status, reply.Offset, reply.SegmentLength, reply.StartOffset, reply.Sealed), null, reply.Data.Memory);
    }

    public override Task<SegmentInfo> GetInfoAsync(string segment, CancellationToken cancellationToken) =>
        _channel.UnaryAsync(SegmentStoreApi.GetSegmentInfo, new SegmentRequest { Segment = segment }, new CallOptions(CancellationToken: cancellationToken));

    public override async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(GrpcSegmentStoreConnection)));
        if (_append is { } call)
        {
            await call.DisposeAsync();
        }

        if (_appendReader is not null)
        {
            await _appendReader;
        }

        _channel.Dispose();
    }

    protected override void OnClosed(Exception reason)
    {
        // Ending the Append call resets its HTTP/2 stream; the reader loop then ends.
        _ = _append?.DisposeAsync().AsTask();
    }

    private async ValueTask WriteAsync(AppendRequestFrame frame, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (IsClosed)
            {
                throw ClosedError;
            }

            if (_append is null)
            {
                _append = _channel.Duplex(SegmentStoreApi.Append);
                _appendReader = Task.Run(() => ReadRepliesAsync(_append));
            }

            try
            {
                await _append.WriteAsync(frame, cancellationToken);
            }
            catch (RpcException e)
            {
                Close(e);
                throw ClosedError;
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadRepliesAsync(GrpcCall<AppendRequestFrame, AppendReply> call)
    {
        try
        {
            while (await call.MoveNextAsync())
            {
                Dispatch(call.Current);
            }

            Close(new IOException("The segment store ended the Append call."));
        }
        catch (Exception e)
        {
            Close(e);
        }
    }
}
