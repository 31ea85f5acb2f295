using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Framing;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Server;

/// <summary>
/// The raw framed data carrier (docs/wire-protocol.md): length-prefixed DataRequest frames in, DataReply frames
/// out, on a plain TCP connection. Appends are processed in arrival order; reads run concurrently (bounded per
/// connection) and are answered as they finish. Block payloads are copied once, from Kestrel's receive buffers
/// into the container's frame; read data is copied once, from the cache into the send buffers.
/// A malformed frame is answered with an ErrorReply carrying a gRPC status code, then the connection closes.
/// </summary>
public sealed class DataConnectionHandler : FramedConnectionHandler<DataConnectionHandler.Session>
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private readonly SegmentRequests _requests;
    private readonly ILogger<DataConnectionHandler> _logger;

    public DataConnectionHandler(SegmentRequests requests, IHostApplicationLifetime lifetime, ILogger<DataConnectionHandler> logger)
        : base(lifetime, logger, "Data")
    {
        _requests = requests;
        _logger = logger;
    }

    /// <summary>Clients then reconnect elsewhere (the connection ends when the client goes away or the server stops).</summary>
    protected override string? ShutdownMessage => "The segment store is shutting down; reconnect.";

    protected override Session OpenSession(FramedReplyChannel replies) =>
        new(new AppendSession(_requests.Store, replies.Send), new SemaphoreSlim(_requests.Store.Options.MaxReadsPerConnection), replies);

    protected override ValueTask OnFrameAsync(Session session, ReadOnlySequence<byte> frame, CancellationToken aborted) =>
        AppendBlockCodec.TryReadEnvelope(frame, out var header, out var data)
            ? session.Appends.OnBlockAsync(header, data, aborted)
            : OnRequestAsync(session, DataRequest.Parser.ParseFrom(frame), aborted);

    /// <summary>The client finished sending: answer what it sent before closing.</summary>
    protected override async ValueTask OnPeerFinishedAsync(Session session, CancellationToken aborted) =>
        await session.Appends.DrainAsync(aborted).WaitAsync(DrainTimeout, aborted);

    protected override void CloseSession(Session session)
    {
        session.Reads.Dispose();
        session.Appends.Dispose();
    }

    protected override IMessage ConnectionError(StatusCode code, string message) => Error(0, code, message);

    // Pooled: a read that waits for its slot must not cost an allocation per frame.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask OnRequestAsync(Session session, DataRequest request, CancellationToken aborted)
    {
        switch (request.KindCase)
        {
            case DataRequest.KindOneofCase.Setup:
                session.Appends.OnSetup(request.Setup);
                break;
            case DataRequest.KindOneofCase.Block:
                var block = request.Block;
                await session.Appends.OnBlockAsync(
                    new AppendBlockHeader(block.RequestId, block.LastEventNumber, block.EventCount, block.HasExpectedOffset ? block.ExpectedOffset : null),
                    new ReadOnlySequence<byte>(block.Data.Memory),
                    aborted);
                break;
            case DataRequest.KindOneofCase.Read:
                await session.Reads.WaitAsync(aborted);
                _ = ReadAsync(request.Read, session.Replies, session.Reads, aborted);
                break;
            case DataRequest.KindOneofCase.Info:
                session.Replies.Send(Info(request.Info));
                break;
            case DataRequest.KindOneofCase.Hello:
                if (request.Hello.ProtocolVersion != RawFraming.ProtocolVersion)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Protocol version {request.Hello.ProtocolVersion} is not supported; this server speaks version {RawFraming.ProtocolVersion}."));
                }

                session.Replies.Send(new DataReply
                {
                    Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion, Server = "streams-segmentstore" },
                });
                break;
            case DataRequest.KindOneofCase.KeepAlive:
                session.Replies.Send(new DataReply { KeepAlive = request.KeepAlive });
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown DataRequest."));
        }
    }

    private DataReply Info(SegmentRequest request)
    {
        try
        {
            return new DataReply { Info = new SegmentInfoReply { RequestId = request.RequestId, Info = _requests.GetInfo(request) } };
        }
        catch (RpcException e)
        {
            return Error(request.RequestId, e.StatusCode, e.Status.Detail);
        }
    }

    private async Task ReadAsync(ReadSegmentRequest request, FramedReplyChannel replies, SemaphoreSlim reads, CancellationToken cancellationToken)
    {
        try
        {
            replies.Send(new ReadReplyFrame(request.RequestId, await _requests.ReadAsync(request, cancellationToken)));
        }
        catch (RpcException e)
        {
            replies.Send(Error(request.RequestId, e.StatusCode, e.Status.Detail));
        }
        catch (OperationCanceledException)
        {
            // The connection closed while the read waited.
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Read of {Segment} at {Offset} failed.", request.Segment, request.Offset);
            replies.Send(Error(request.RequestId, StatusCode.Internal, $"Internal error: {e.Message}"));
        }
        finally
        {
            reads.Release();
        }
    }

    private static DataReply Error(long requestId, StatusCode code, string message) =>
        new() { Error = new ErrorReply { RequestId = requestId, Code = (int)code, Message = message } };

    /// <summary>What a connection keeps: its append session, its bound on concurrent reads, its reply channel.</summary>
    public sealed record Session(AppendSession Appends, SemaphoreSlim Reads, FramedReplyChannel Replies);
}
