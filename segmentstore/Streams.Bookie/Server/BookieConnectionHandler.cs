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
/// <para>
/// Memory: each connection has a <see cref="ReplyBudget"/> of Bookie:MaxConnectionInFlightBytes and at most
/// Bookie:MaxConnectionInFlightRequests requests in progress. A request takes its bytes before it starts (an add its
/// payload, a read the largest entry until it knows its entry's size) and gives them back when its reply is flushed
/// to the socket; its request slot is free once it is answered. While either is spent the next frame is not read, so
/// a client that floods the bookie or stops reading replies is slowed down by TCP instead of filling the bookie's
/// memory.
/// </para>
/// </summary>
public sealed class BookieConnectionHandler : FramedConnectionHandler<BookieConnectionHandler.Session>
{
    /// <summary>What a request costs beyond its payload: its reply, its task and its place in the journal's queue.</summary>
    private const int RequestOverhead = 256;

    private readonly BookieStore _store;
    private readonly BookieReplies _replies;

    public BookieConnectionHandler(BookieStore store, IHostApplicationLifetime lifetime, ILogger<BookieConnectionHandler> logger)
        : base(lifetime, logger, "Bookie")
    {
        _store = store;
        _replies = new BookieReplies(store);
    }

    /// <inheritdoc />
    protected override long? ReplyBudgetBytes => _store.Options.MaxConnectionInFlightBytes.Bytes;

    protected override Session OpenSession(FramedReplyChannel replies) => new(replies, _store.Options.MaxConnectionInFlightRequests);

    protected override async ValueTask OnFrameAsync(Session session, ReadOnlySequence<byte> frame, CancellationToken aborted)
    {
        if (BookieProtocol.TryReadAdd(frame, out var add, out var payload))
        {
            // Waiting here (not reading the next frame) is the back-pressure; the frame stays valid until we return.
            var cost = RequestOverhead + payload.Length;
            await session.BeginAsync(cost, aborted);
            _ = ReplyAsync(_store.AddAsync(add.Ledger, add.Entry, add.LastAddConfirmed, add.Crc, add.Recovery, payload), add, session, cost);
            return;
        }

        var request = BookieRequest.Parser.ParseFrom(frame);
        switch (request.KindCase)
        {
            case BookieRequest.KindOneofCase.Add:
                var a = request.Add;
                var addCost = RequestOverhead + a.Payload.Length;
                await session.BeginAsync(addCost, aborted);
                _ = ReplyAsync(_store.AddAsync(a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery, new ReadOnlySequence<byte>(a.Payload.Memory)),
                    new BookieProtocol.AddHeader(a.RequestId, a.LedgerId, a.EntryId, a.LastAddConfirmed, a.Crc32C, a.Recovery), session, addCost);
                break;
            case BookieRequest.KindOneofCase.Read:
                // Until the entry is read its size is unknown: it may be as large as the largest entry.
                var readCost = RequestOverhead + _store.Options.MaxEntrySize.Bytes;
                await session.BeginAsync(readCost, aborted);
                _ = ReadAsync(request.Read, session, readCost, aborted);
                break;
            case BookieRequest.KindOneofCase.ReadLac:
                await session.BeginAsync(RequestOverhead, aborted);
                session.Send(new BookieReply { ReadLac = _replies.ReadLac(request.ReadLac) }, RequestOverhead);
                break;
            case BookieRequest.KindOneofCase.Fence:
                await session.BeginAsync(RequestOverhead, aborted);
                _ = FenceAsync(request.Fence, session);
                break;
            case BookieRequest.KindOneofCase.Delete:
                await session.BeginAsync(RequestOverhead, aborted);
                _ = DeleteAsync(request.Delete, session);
                break;
            case BookieRequest.KindOneofCase.Hello:
                // Also the ledger client's keep-alive probe: answered at once, like the first.
                if (request.Hello.ProtocolVersion != BookieProtocol.ProtocolVersion)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Bookie protocol version {request.Hello.ProtocolVersion} is not supported; this bookie speaks {BookieProtocol.ProtocolVersion}."));
                }

                await session.BeginAsync(RequestOverhead, aborted);
                session.Send(new BookieReply { Hello = new BookieHello { ProtocolVersion = BookieProtocol.ProtocolVersion } }, RequestOverhead);
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown BookieRequest."));
        }
    }

    protected override IMessage ConnectionError(StatusCode code, string message) =>
        new BookieReply { Error = new BookieError { RequestId = 0, Code = (int)code, Message = message } };

    private static async Task ReplyAsync(Task<BookieStatus> stored, BookieProtocol.AddHeader add, Session session, long cost) =>
        session.Send(new BookieReply
        {
            Add = new AddEntryReply { RequestId = add.RequestId, LedgerId = add.Ledger, EntryId = add.Entry, Status = await stored },
        }, cost);

    private async Task ReadAsync(ReadEntryRequest request, Session session, long cost, CancellationToken cancellationToken)
    {
        EntryRead read;
        try
        {
            read = await _store.ReadAsync(request.LedgerId, request.EntryId, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            session.Abandon(cost); // the connection is gone: nobody to answer
            return;
        }

        if (read.Status == BookieStatus.Ok)
        {
            // From now on the reply holds the entry's bytes, not the largest entry's.
            var actual = RequestOverhead + read.Payload.Length;
            session.Budget.Release(cost - actual);
            session.Send(new BookieProtocol.EntryReplyBody(request.RequestId, request.LedgerId, request.EntryId, read), actual);
            return;
        }

        read.Dispose();
        session.Send(new BookieReply
        {
            Read = new ReadEntryReply { RequestId = request.RequestId, LedgerId = request.LedgerId, EntryId = request.EntryId, Status = read.Status, Message = read.Message ?? string.Empty },
        }, cost);
    }

    private async Task FenceAsync(FenceRequest request, Session session) =>
        session.Send(new BookieReply { Fence = await _replies.FenceAsync(request) }, RequestOverhead);

    private async Task DeleteAsync(DeleteLedgerRequest request, Session session) =>
        session.Send(new BookieReply { Delete = await _replies.DeleteAsync(request) }, RequestOverhead);

    /// <summary>A connection's reply channel, its bytes in flight (the channel's budget) and its request slots.</summary>
    public sealed class Session
    {
        private readonly SemaphoreSlim _requests;

        internal Session(FramedReplyChannel replies, int maxRequests)
        {
            Replies = replies;
            Budget = replies.Budget ?? throw new InvalidOperationException("A bookie connection's replies must have a budget.");
            _requests = new SemaphoreSlim(maxRequests, maxRequests);
        }

        internal FramedReplyChannel Replies { get; }

        internal ReplyBudget Budget { get; }

        /// <summary>
        /// Takes a request slot and <paramref name="cost"/> bytes, waiting while either is spent (the next frame is
        /// not read meanwhile). Throws when the connection ends, holding nothing.
        /// </summary>
        internal async ValueTask BeginAsync(long cost, CancellationToken aborted)
        {
            var throttled = false;
            if (!_requests.Wait(0))
            {
                throttled = true;
                BookieMetrics.ConnectionThrottled.Add(1);
                await _requests.WaitAsync(aborted);
            }

            if (Budget.TryAcquire(cost))
            {
                return;
            }

            if (!throttled)
            {
                BookieMetrics.ConnectionThrottled.Add(1);
            }

            try
            {
                await Budget.AcquireAsync(cost, aborted);
            }
            catch (OperationCanceledException)
            {
                _requests.Release();
                throw;
            }
        }

        /// <summary>Queues a request's reply: its slot is free now, its <paramref name="cost"/> once the reply is flushed.</summary>
        internal void Send(IMessage reply, long cost)
        {
            Replies.Send(reply, cost);
            _requests.Release();
        }

        /// <inheritdoc cref="Send(IMessage, long)"/>
        internal void Send(IFrameBody reply, long cost)
        {
            Replies.Send(reply, cost);
            _requests.Release();
        }

        /// <summary>Gives back a request that will not be answered (its connection is gone).</summary>
        internal void Abandon(long cost)
        {
            Budget.Release(cost);
            _requests.Release();
        }
    }
}
