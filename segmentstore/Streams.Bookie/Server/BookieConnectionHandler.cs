using System.Buffers;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Bookie.Storage;
using Grpc.Core;
using Streams.Common.Server.Framing;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>
/// The bookie's raw framed carrier, used by the ledger client: BookieRequest frames in, BookieReply frames out.
/// Requests of a connection are handled concurrently and answered as they complete (by request id); an add's payload
/// is copied once, from the receive buffer into the journal, before the next frame is read.
/// A malformed frame gets a BookieError with request id 0 and the connection is closed.
/// </summary>
public sealed class BookieConnectionHandler : FramedConnectionHandler<FramedReplyChannel>
{
    private readonly BookieStore _store;
    private readonly BookieReplies _replies;

    public BookieConnectionHandler(BookieStore store, IHostApplicationLifetime lifetime, ILogger<BookieConnectionHandler> logger)
        : base(lifetime, logger, "Bookie")
    {
        _store = store;
        _replies = new BookieReplies(store);
    }

    protected override FramedReplyChannel OpenSession(FramedReplyChannel replies) => replies;

    protected override ValueTask OnFrameAsync(FramedReplyChannel replies, ReadOnlySequence<byte> frame, CancellationToken aborted)
    {
        if (BookieProtocol.TryReadAdd(frame, out var add, out var payload))
        {
            var stored = _store.AddAsync(add.Ledger, add.Entry, add.LastAddConfirmed, add.Crc, add.Recovery, payload);
            _ = ReplyAsync(stored, add, replies);
            return ValueTask.CompletedTask;
        }

        var request = BookieRequest.Parser.ParseFrom(frame);
        switch (request.KindCase)
        {
            case BookieRequest.KindOneofCase.Add:
                var a = request.Add;
                var copy = new ReadOnlySequence<byte>(a.Payload.Memory);
                _ = ReplyAsync(_store.AddAsync(a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery, copy),
                    new BookieProtocol.AddHeader(a.RequestId, a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery), replies);
                break;
            case BookieRequest.KindOneofCase.Read:
                _ = ReadAsync(request.Read, replies, aborted);
                break;
            case BookieRequest.KindOneofCase.ReadLac:
                replies.Send(new BookieReply { ReadLac = _replies.ReadLac(request.ReadLac) });
                break;
            case BookieRequest.KindOneofCase.Fence:
                _ = FenceAsync(request.Fence, replies);
                break;
            case BookieRequest.KindOneofCase.Delete:
                _ = DeleteAsync(request.Delete, replies);
                break;
            case BookieRequest.KindOneofCase.Hello:
                // Also the ledger client's keep-alive probe: answered at once, like the first.
                if (request.Hello.ProtocolVersion != BookieProtocol.ProtocolVersion)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Bookie protocol version {request.Hello.ProtocolVersion} is not supported; this bookie speaks {BookieProtocol.ProtocolVersion}."));
                }

                replies.Send(new BookieReply { Hello = new BookieHello { ProtocolVersion = BookieProtocol.ProtocolVersion } });
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown BookieRequest."));
        }

        return ValueTask.CompletedTask;
    }

    protected override IMessage ConnectionError(StatusCode code, string message) =>
        new BookieReply { Error = new BookieError { RequestId = 0, Code = (int)code, Message = message } };

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

    private async Task FenceAsync(FenceRequest request, FramedReplyChannel replies) =>
        replies.Send(new BookieReply { Fence = await _replies.FenceAsync(request) });

    private async Task DeleteAsync(DeleteLedgerRequest request, FramedReplyChannel replies) =>
        replies.Send(new BookieReply { Delete = await _replies.DeleteAsync(request) });
}
