using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>
/// A connection on the gRPC carrier: one Append bidirectional call carries all appends, reads and info are
/// unary calls on the same HTTP/2 connection. Appends and reads use the data-path marshallers
/// (<see cref="DataPathMethods"/>): blocks go out from the writer's buffers, read data lands in pooled memory.
/// </summary>
internal sealed class GrpcSegmentStoreConnection : SegmentStoreConnection
{
    /// <summary>Read, with the reply's data copied once into pooled memory instead of into a fresh array.</summary>
    private static readonly Method<ReadSegmentRequest, SegmentReadReply> ReadMethod = new(
        MethodType.Unary, SegmentStore.Descriptor.FullName, "Read", DataPathMethods.Protobuf(ReadSegmentRequest.Parser),
        new Marshaller<SegmentReadReply>(
            static (_, _) => throw new NotSupportedException("The client only reads read replies."),
            static context =>
            {
                ReadReplyCodec.Read(context.PayloadAsReadOnlySequence(), out var header, out var data);
                return SegmentReadReply.Copy(header, data);
            }));

    private readonly GrpcChannel _channel;
    private readonly CallInvoker _invoker;
    private readonly SegmentStore.SegmentStoreClient _client;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private AsyncDuplexStreamingCall<AppendRequestFrame, AppendReply>? _append;
    private Task? _appendReader;

    public GrpcSegmentStoreConnection(string uri, KeepAliveSettings keepAlive)
    {
        _channel = GrpcChannels.Create(uri, new GrpcChannelSettings { KeepAlivePingDelay = keepAlive.Interval, KeepAlivePingTimeout = keepAlive.Timeout });
        _invoker = _channel.CreateCallInvoker();
        _client = new SegmentStore.SegmentStoreClient(_invoker);
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
        var request = new ReadSegmentRequest { Segment = segment, Offset = offset, MaxBytes = maxBytes, WaitMillis = waitMillis };
        return await _invoker.AsyncUnaryCall(ReadMethod, null, new CallOptions(cancellationToken: cancellationToken), request);
    }

    public override async Task<SegmentInfo> GetInfoAsync(string segment, CancellationToken cancellationToken) =>
        await _client.GetSegmentInfoAsync(new SegmentRequest { Segment = segment }, cancellationToken: cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(GrpcSegmentStoreConnection)));
        if (_appendReader is not null)
        {
            await _appendReader;
        }

        _channel.Dispose();
        _writeLock.Dispose();
    }

    protected override void OnClosed(Exception reason)
    {
        // Ending the Append call resets its HTTP/2 stream; the reader loop then ends.
        _append?.Dispose();
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
                _append = _invoker.AsyncDuplexStreamingCall(DataPathMethods.Append, null, default);
                _appendReader = Task.Run(() => ReadRepliesAsync(_append));
            }

            try
            {
                await _append.RequestStream.WriteAsync(frame, cancellationToken);
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException or ObjectDisposedException)
            {
                // A cancelled write cancels the whole call (gRPC cannot take back half a message), so the connection
                // closes either way; the caller that cancelled hears of its cancellation, the others of the close.
                Close(e);
                cancellationToken.ThrowIfCancellationRequested();
                throw ClosedError;
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadRepliesAsync(AsyncDuplexStreamingCall<AppendRequestFrame, AppendReply> call)
    {
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                Dispatch(call.ResponseStream.Current);
            }

            Close(new IOException("The segment store ended the Append call."));
        }
        catch (Exception e)
        {
            Close(e);
        }
    }
}
