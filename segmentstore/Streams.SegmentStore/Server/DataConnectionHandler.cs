using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Grpc;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Server;

/// <summary>
/// The raw framed data carrier (docs/wire-protocol.md): length-prefixed DataRequest frames in, DataReply frames
/// out, on a plain TCP connection. Appends are processed in arrival order; reads run concurrently (bounded per
/// connection) and are answered as they finish. Block payloads are copied once, from Kestrel's receive buffers
/// into the container's frame; read data is copied once, from the cache into the send buffers.
/// A malformed frame is answered with an ErrorReply carrying a gRPC status code, then the connection closes.
/// </summary>
internal sealed class DataConnectionHandler : ConnectionHandler
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
        var outgoing = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
        var session = new AppendSession(_requests.Store, reply => outgoing.Writer.TryWrite(new Outgoing(reply, null, 0)));
        var reads = new SemaphoreSlim(_requests.Store.Options.MaxReadsPerConnection);
        var sender = SendAsync(outgoing.Reader, connection.Transport.Output);
        var reader = new FramedMessageReader(connection.Transport.Input, FrameFormat.Raw, RawFraming.DefaultMaxFrameSize);
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
                        _ = ReadAsync(request.Read, outgoing.Writer, reads, aborted);
                        break;
                    case DataRequest.KindOneofCase.Info:
                        outgoing.Writer.TryWrite(Info(request.Info));
                        break;
                    case DataRequest.KindOneofCase.Hello:
                        if (request.Hello.ProtocolVersion != RawFraming.ProtocolVersion)
                        {
                            throw new RpcException(StatusCode.FailedPrecondition,
                                $"Protocol version {request.Hello.ProtocolVersion} is not supported; this server speaks version {RawFraming.ProtocolVersion}.");
                        }

                        outgoing.Writer.TryWrite(new Outgoing(new DataReply
                        {
                            Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion, Server = "streams-segmentstore" },
                        }, null, 0));
                        break;
                    default:
                        throw new RpcException(StatusCode.InvalidArgument, "Empty or unknown DataRequest.");
                }
            }

            // The client finished sending: answer what it sent before closing.
            await session.DrainAsync(aborted).WaitAsync(DrainTimeout, aborted);
        }
        catch (RpcException e)
        {
            SendFatal(outgoing.Writer, e.StatusCode, e.Status.Detail);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            SendFatal(outgoing.Writer, StatusCode.InvalidArgument, $"Malformed frame: {e.Message}");
        }
        catch (OperationCanceledException) when (_lifetime.ApplicationStopping.IsCancellationRequested && !connection.ConnectionClosed.IsCancellationRequested)
        {
            SendFatal(outgoing.Writer, StatusCode.Unavailable, "The segment store is shutting down; reconnect.");
        }
        catch (Exception e) when (e is OperationCanceledException or ConnectionResetException or IOException or TimeoutException)
        {
            _logger.LogDebug("Data connection {Connection} ended: {Reason}", connection.ConnectionId, e.Message);
        }
        finally
        {
            outgoing.Writer.TryComplete();
            await sender;
            reader.Release();
            await connection.Transport.Input.CompleteAsync();
        }
    }

    private Outgoing Info(SegmentRequest request)
    {
        try
        {
            return new Outgoing(new DataReply { Info = new SegmentInfoReply { RequestId = request.RequestId, Info = _requests.GetInfo(request) } }, null, 0);
        }
        catch (RpcException e)
        {
            return Error(request.RequestId, e.StatusCode, e.Status.Detail);
        }
    }

    private async Task ReadAsync(ReadSegmentRequest request, ChannelWriter<Outgoing> outgoing, SemaphoreSlim reads, CancellationToken cancellationToken)
    {
        try
        {
            var result = await _requests.ReadAsync(request, cancellationToken);
            if (!outgoing.TryWrite(new Outgoing(null, result, request.RequestId)))
            {
                result.Dispose();
            }
        }
        catch (RpcException e)
        {
            outgoing.TryWrite(Error(request.RequestId, e.StatusCode, e.Status.Detail));
        }
        catch (OperationCanceledException)
        {
            // The connection closed while the read waited.
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Read of {Segment} at {Offset} failed.", request.Segment, request.Offset);
            outgoing.TryWrite(Error(request.RequestId, StatusCode.Internal, $"Internal error: {e.Message}"));
        }
        finally
        {
            reads.Release();
        }
    }

    private static Outgoing Error(long requestId, StatusCode code, string message) =>
        new(new DataReply { Error = new ErrorReply { RequestId = requestId, Code = (int)code, Message = message } }, null, 0);

    private static void SendFatal(ChannelWriter<Outgoing> outgoing, StatusCode code, string message) =>
        outgoing.TryWrite(Error(0, code, message));

    /// <summary>Writes replies until the channel completes. Replies still go out while the server stops.</summary>
    private async Task SendAsync(ChannelReader<Outgoing> outgoing, PipeWriter output)
    {
        try
        {
            while (await outgoing.WaitToReadAsync(CancellationToken.None))
            {
                while (outgoing.TryRead(out var item))
                {
                    if (item.Read is { } read)
                    {
                        using (read)
                        {
                            var header = new ReadReplyHeader(item.RequestId, read.Status, read.Offset, read.SegmentLength, read.StartOffset, read.IsSealed);
                            RawFraming.WriteHeader(output, ReadReplyCodec.EnvelopeSize(header, read.Data.Length));
                            ReadReplyCodec.WriteEnvelope(output, header, read.Data);
                        }
                    }
                    else
                    {
                        // AppendReply and DataReply share field numbers 1-3, so an AppendReply is a valid DataReply frame.
                        RawFraming.WriteMessage(output, item.Message!);
                    }

                    if (output.UnflushedBytes >= 256 * 1024)
                    {
                        await output.FlushAsync();
                    }
                }

                await output.FlushAsync();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException or InvalidOperationException)
        {
            // The peer went away: release what was queued for it.
            while (outgoing.TryRead(out var item))
            {
                item.Read?.Dispose();
            }
        }
        finally
        {
            await output.CompleteAsync();
        }
    }

    private readonly record struct Outgoing(IMessage? Message, SegmentRead? Read, long RequestId);
}
