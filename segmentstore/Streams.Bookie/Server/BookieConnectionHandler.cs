using Google.Protobuf;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Bookie.Storage;
using Grpc.Core;
using Streams.Common.Server.Framing;
using Streams.Common.Wire;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>
/// The bookie's raw framed carrier, used by the ledger client: BookieRequest frames in, BookieReply frames out.
/// Requests of a connection are handled concurrently and answered as they complete (by request id); an add's payload
/// is copied once, from the receive buffer into the journal, before the next frame is read.
/// A malformed frame gets a BookieError with request id 0 and the connection is closed.
/// </summary>
public sealed class BookieConnectionHandler : ConnectionHandler
{
    private readonly BookieStore _store;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<BookieConnectionHandler> _logger;

    public BookieConnectionHandler(BookieStore store, IHostApplicationLifetime lifetime, ILogger<BookieConnectionHandler> logger)
    {
        _store = store;
        _lifetime = lifetime;
        _logger = logger;
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed, _lifetime.ApplicationStopping);
        var aborted = lifetime.Token;
        var replies = new FramedReplyChannel(connection.Transport.Output);
        var reader = new FramedMessageReader(connection.Transport.Input, RawFraming.DefaultMaxFrameSize);
        try
        {
            while (await reader.MoveNextAsync(aborted))
            {
                if (BookieProtocol.TryReadAdd(reader.Current, out var add, out var payload))
                {
                    var stored = _store.AddAsync(add.Ledger, add.Entry, add.LastAddConfirmed, add.Crc, add.Recovery, payload);
                    _ = ReplyAsync(stored, add, replies);
                    continue;
                }

                var request = BookieRequest.Parser.ParseFrom(reader.Current);
                switch (request.KindCase)
                {
                    case BookieRequest.KindOneofCase.Add:
                        var a = request.Add;
                        var copy = new System.Buffers.ReadOnlySequence<byte>(a.Payload.Memory);
                        _ = ReplyAsync(_store.AddAsync(a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery, copy),
                            new BookieProtocol.AddHeader(a.RequestId, a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery), replies);
                        break;
                    case BookieRequest.KindOneofCase.Read:
                        _ = ReadAsync(request.Read, replies, aborted);
                        break;
                    case BookieRequest.KindOneofCase.ReadLac:
                        var lac = _store.ReadLac(request.ReadLac.LedgerId);
                        replies.Send(new BookieReply
                        {
                            ReadLac = new ReadLacReply
                            {
                                RequestId = request.ReadLac.RequestId, LedgerId = request.ReadLac.LedgerId, Status = lac.Status,
                                LastAddConfirmed = lac.LastAddConfirmed, LastEntryId = lac.LastEntryId, Fenced = lac.Fenced,
                            },
                        });
                        break;
                    case BookieRequest.KindOneofCase.Fence:
                        _ = FenceAsync(request.Fence, replies);
                        break;
                    case BookieRequest.KindOneofCase.Delete:
                        _ = DeleteAsync(request.Delete, replies);
                        break;
                    case BookieRequest.KindOneofCase.Hello:
                        if (request.Hello.ProtocolVersion != BookieProtocol.ProtocolVersion)
                        {
                            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Bookie protocol version {request.Hello.ProtocolVersion} is not supported; this bookie speaks {BookieProtocol.ProtocolVersion}."));
                        }

                        replies.Send(new BookieReply { Hello = new BookieHello { ProtocolVersion = BookieProtocol.ProtocolVersion } });
                        break;
                    default:
                        throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown BookieRequest."));
                }
            }
        }
        catch (RpcException e)
        {
            replies.Send(Error(e.StatusCode, e.Status.Detail));
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            replies.Send(Error(StatusCode.InvalidArgument, $"Malformed frame: {e.Message}"));
        }
        catch (Exception e) when (e is OperationCanceledException or ConnectionResetException or IOException)
        {
            _logger.LogDebug("Bookie connection {Connection} ended: {Reason}", connection.ConnectionId, e.Message);
        }
        finally
        {
            await replies.CompleteAsync();
            reader.Release();
            await connection.Transport.Input.CompleteAsync();
        }
    }

    private static async Task ReplyAsync(Task<BookieStatus> stored, BookieProtocol.AddHeader add, FramedReplyChannel replies) =>
        replies.Send(new BookieReply
        {
            Add = new AddEntryReply { RequestId = add.RequestId, LedgerId = add.Ledger, EntryId = add.Entry, Status = await stored },
        });

    private async Task ReadAsync(ReadEntryRequest request, FramedReplyChannel replies, CancellationToken cancellationToken)
    {
        var read = await _store.ReadAsync(request.LedgerId, request.EntryId, cancellationToken);
        if (read.Status == BookieStatus.Ok)
        {
            replies.Send(new BookieProtocol.EntryReplyBody(request.RequestId, request.LedgerId, request.EntryId, read));
            return;
        }

        read.Dispose();
        replies.Send(new BookieReply
        {
            Read = new ReadEntryReply { RequestId = request.RequestId, LedgerId = request.LedgerId, EntryId = request.EntryId, Status = read.Status, Message = read.Message ?? string.Empty },
        });
    }

    private async Task FenceAsync(FenceRequest request, FramedReplyChannel replies)
    {
        var fenced = await _store.FenceAsync(request.LedgerId);
        replies.Send(new BookieReply
        {
            Fence = new FenceReply
            {
                RequestId = request.RequestId, LedgerId = request.LedgerId, Status = fenced.Status,
                LastAddConfirmed = fenced.LastAddConfirmed, LastEntryId = fenced.LastEntryId,
            },
        });
    }

    private async Task DeleteAsync(DeleteLedgerRequest request, FramedReplyChannel replies) =>
        replies.Send(new BookieReply
        {
            Delete = new DeleteLedgerReply { RequestId = request.RequestId, LedgerId = request.LedgerId, Status = await _store.DeleteAsync(request.LedgerId) },
        });

    private static BookieReply Error(StatusCode code, string message) =>
        new() { Error = new BookieError { RequestId = 0, Code = (int)code, Message = message } };
}
