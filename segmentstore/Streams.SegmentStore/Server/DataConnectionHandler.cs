using System.Buffers;
using Google.Protobuf;
using Microsoft.AspNetCore.Connections;
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
public sealed class DataConnectionHandler : ConnectionHandler
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private readonly SegmentRequests _requests;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<DataConnectionHandler> _logger;

    public DataConnectionHandler(SegmentRequests requests, IHostApplicationLifetime lifetime, ILogger<DataConnectionHandler> logger)
    {
        _requests = requests;
        _lifetime = lifetime;
        _logger = logger;
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        // The connection ends when the client goes away or the server begins to stop (clients then reconnect elsewhere).
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed, _lifetime.ApplicationStopping);
        var aborted = lifetime.Token;
        var replies = new FramedReplyChannel(connection.Transport.Output);
        using var session = new AppendSession(_requests.Store, replies.Send);
        using var reads = new SemaphoreSlim(_requests.Store.Options.MaxReadsPerConnection);
        var reader = new FramedMessageReader(connection.Transport.Input, RawFraming.DefaultMaxFrameSize);
        try
        {
            while (await reader.MoveNextAsync(aborted))
            {
                var frame = reader.Current;
                if (AppendBlockCodec.TryReadEnvelope(frame, out var header, out var data))
                {
                    await session.OnBlockAsync(header, data, aborted);
                    continue;
                }

                var request = DataRequest.Parser.ParseFrom(frame);
                switch (request.KindCase)
                {
                    case DataRequest.KindOneofCase.Setup:
                        session.OnSetup(request.Setup);
                        break;
                    case DataRequest.KindOneofCase.Block:
                        var block = request.Block;
                        await session.OnBlockAsync(
                            new AppendBlockHeader(block.RequestId, block.LastEventNumber, block.EventCount, block.HasExpectedOffset ? block.ExpectedOffset : null),
                            new ReadOnlySequence<byte>(block.Data.Memory),
                            aborted);
                        break;
                    case DataRequest.KindOneofCase.Read:
                        await reads.WaitAsync(aborted);
                        _ = ReadAsync(request.Read, replies, reads, aborted);
                        break;
                    case DataRequest.KindOneofCase.Info:
                        replies.Send(Info(request.Info));
                        break;
                    case DataRequest.KindOneofCase.Hello:
                        if (request.Hello.ProtocolVersion != RawFraming.ProtocolVersion)
                        {
                            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Protocol version {request.Hello.ProtocolVersion} is not supported; this server speaks version {RawFraming.ProtocolVersion}."));
                        }

                        replies.Send(new DataReply
                        {
                            Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion, Server = "streams-segmentstore" },
                        });
                        break;
                    case DataRequest.KindOneofCase.KeepAlive:
                        replies.Send(new DataReply { KeepAlive = request.KeepAlive });
                        break;
                    default:
                        throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown DataRequest."));
                }
            }

            // The client finished sending: answer what it sent before closing.
            await session.DrainAsync(aborted).WaitAsync(DrainTimeout, aborted);
        }
        catch (RpcException e)
        {
            replies.Send(Error(0, e.StatusCode, e.Status.Detail));
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            replies.Send(Error(0, StatusCode.InvalidArgument, $"Malformed frame: {e.Message}"));
        }
        catch (OperationCanceledException) when (_lifetime.ApplicationStopping.IsCancellationRequested && !connection.ConnectionClosed.IsCancellationRequested)
        {
            replies.Send(Error(0, StatusCode.Unavailable, "The segment store is shutting down; reconnect."));
        }
        catch (Exception e) when (e is OperationCanceledException or ConnectionResetException or IOException or TimeoutException)
        {
            _logger.LogDebug("Data connection {Connection} ended: {Reason}", connection.ConnectionId, e.Message);
        }
        finally
        {
            await replies.CompleteAsync();
            reader.Release();
            await connection.Transport.Input.CompleteAsync();
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
}
