using System.Threading.Channels;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Server.Grpc;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Server;

/// <summary>streams.segmentstore.v1.SegmentStore on the gRPC carrier.</summary>
internal sealed class GrpcSegmentStoreService
{
    /// <summary>How long a finished Append call waits for the answers to blocks it already sent.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The server's view of Read: the reply is written from cached frames without copying into a message.</summary>
    private static readonly Method<ReadSegmentRequest, ReadReplyFrame> ReadMethod = new(
        MethodType.Unary, SegmentStoreApi.ServiceName, "Read", SegmentStoreApi.Read.RequestMarshaller, ReadReplyFrame.Marshaller);

    private readonly SegmentRequests _requests;

    public GrpcSegmentStoreService(SegmentRequests requests)
    {
        _requests = requests;
    }

    public void Register(GrpcServer server)
    {
        server.AddDuplex(SegmentStoreApi.Append, AppendAsync);
        server.AddUnary(ReadMethod, async (request, context) =>
            new ReadReplyFrame(request.RequestId, await _requests.ReadAsync(request, context.CancellationToken)));
        server.AddUnary(SegmentStoreApi.GetSegmentInfo, (request, _) => ValueTask.FromResult(_requests.GetInfo(request)));
        server.AddUnary(SegmentStoreApi.CreateSegment, async (request, context) => await _requests.CreateAsync(request, context.CancellationToken));
        server.AddUnary(SegmentStoreApi.SealSegment, async (request, context) => await _requests.SealAsync(request, context.CancellationToken));
        server.AddUnary(SegmentStoreApi.TruncateSegment, async (request, context) => await _requests.TruncateAsync(request, context.CancellationToken));
        server.AddUnary(SegmentStoreApi.DeleteSegment, async (request, context) => await _requests.DeleteAsync(request, context.CancellationToken));
    }

    private async Task AppendAsync(
        ServerRequestStream<AppendRequestFrame> requests, ServerResponseStream<AppendReply> responses, ServerCallContext context)
    {
        var replies = Channel.CreateUnbounded<AppendReply>(new UnboundedChannelOptions { SingleReader = true });
        var session = new AppendSession(_requests.Store, reply => replies.Writer.TryWrite(reply));
        var sender = SendRepliesAsync(replies.Reader, responses, context.CancellationToken);
        try
        {
            while (await requests.MoveNextAsync(context.CancellationToken))
            {
                var frame = requests.Current;
                if (frame.Message is null)
                {
                    await session.OnBlockAsync(frame.Header, frame.Data, context.CancellationToken);
                    continue;
                }

                switch (frame.Message.KindCase)
                {
                    case AppendRequest.KindOneofCase.Setup:
                        session.OnSetup(frame.Message.Setup);
                        break;
                    case AppendRequest.KindOneofCase.Block:
                        // A block encoded with other fields around it: parsed by Google.Protobuf, so its data was copied.
                        var block = frame.Message.Block;
                        await session.OnBlockAsync(
                            new Common.Wire.AppendBlockHeader(block.RequestId, block.LastEventNumber, block.EventCount, block.HasExpectedOffset ? block.ExpectedOffset : null),
                            new System.Buffers.ReadOnlySequence<byte>(block.Data.Memory),
                            context.CancellationToken);
                        break;
                    default:
                        throw new RpcException(StatusCode.InvalidArgument, "An AppendRequest must hold a setup or a block.");
                }
            }

            // The client finished sending: answer everything it sent, then end the call.
            await session.DrainAsync(context.CancellationToken).WaitAsync(DrainTimeout, context.CancellationToken);
        }
        finally
        {
            replies.Writer.TryComplete();
            await sender;
        }
    }

    private static async Task SendRepliesAsync(ChannelReader<AppendReply> replies, ServerResponseStream<AppendReply> responses, CancellationToken cancellationToken)
    {
        try
        {
            while (await replies.WaitToReadAsync(cancellationToken))
            {
                while (replies.TryRead(out var reply))
                {
                    responses.Write(reply);
                }

                await responses.FlushAsync(cancellationToken);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The call ended (cancelled or the client went away); nobody is listening for replies.
        }
    }
}
