using System.Buffers;
using Google.Protobuf;
using Streams.Common.Framing;
using Streams.Common.Wire;
using Streams.Contracts.Bookie;

namespace Streams.Ledger.Bookies;

/// <summary>
/// A connection to a bookie on the raw framed carrier: the bookie's BookieRequest/BookieReply messages over a
/// <see cref="FramedClientConnection"/>, which multiplexes requests by id. Add payloads are written from the caller's
/// buffer into the socket's pipe as the frame is written (EntryPayload). A request with no answer within the timeout, a bookie that answers nothing (not
/// even keep-alives) for that long, or a broken connection fails with <see cref="BookieUnavailableException"/>; the
/// client is then broken and a new one must be made.
/// <para>
/// The bookie protocol has no keep-alive message of its own: the probe is a repeated <c>BookieHello</c>, which every
/// bookie answers at once, so the wire format is unchanged. A quiet connection probes every third of the request
/// timeout and is given up after a whole request timeout of silence: the same patience a request gets.
/// </para>
/// </summary>
internal sealed class RawBookieClient : IBookieClient, IFramedClientProtocol
{
    private const int AddEnvelopeField = 1;
    private const int ReadReplyEnvelopeField = 2;
    private const int PayloadField = 7;
    private const int ProtocolVersion = 1;

    private static readonly BookieRequest Hello = new() { Hello = new BookieHello { ProtocolVersion = ProtocolVersion } };

    private readonly string _host;
    private readonly int _port;
    private readonly TimeSpan _timeout;
    private FramedClientConnection? _connection;
    private long _nextRequestId;

    private RawBookieClient(string bookieId, string host, int port, TimeSpan timeout)
    {
        BookieId = bookieId;
        _host = host;
        _port = port;
        _timeout = timeout;
    }

    public string BookieId { get; }

    public bool IsBroken => Connection.IsClosed;

    /// <summary>Set by <see cref="ConnectAsync"/> before the client is handed out.</summary>
    private FramedClientConnection Connection => _connection!;

    public static async Task<RawBookieClient> ConnectAsync(string bookieId, string host, int port, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var client = new RawBookieClient(bookieId, host, port, timeout);
        client._connection = await FramedClientConnection.ConnectAsync(host, port, Hello, client, new FramedConnectionOptions
        {
            PeerName = "bookie", ConnectTimeout = timeout, RequestTimeout = timeout, KeepAliveInterval = timeout / 3, KeepAliveTimeout = timeout,
        }, cancellationToken);
        return client;
    }

    public async Task<BookieStatus> AddAsync(long ledger, long entry, long lastAddConfirmed, uint crc, bool recovery, EntryPayload payload, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var add = (Id: id, Ledger: ledger, Entry: entry, Lac: lastAddConfirmed, Crc: crc, Recovery: recovery, Payload: payload);
        var reply = (BookieReply)await Connection.RequestAsync(id, add, static (output, in add) =>
        {
            // The payload is read here, as the frame is written, not when the add was called (EntryPayload).
            add.Payload.Use((Output: output, Add: add), static (bytes, s) =>
            {
                Span<long> fields = stackalloc long[PayloadField];
                (fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]) = (s.Add.Id, s.Add.Ledger, s.Add.Entry, s.Add.Lac, s.Add.Crc, s.Add.Recovery ? 1 : 0);
                var data = new ReadOnlySequence<byte>(bytes);
                RawFraming.WriteHeader(s.Output, PayloadMessageCodec.EnvelopeSize(AddEnvelopeField, fields, 0, PayloadField, data.Length));
                PayloadMessageCodec.WriteEnvelope(s.Output, AddEnvelopeField, fields, 0, PayloadField, data);
                return 0;
            });
        }, cancellationToken);
        return reply.Add.Status;
    }

    public async Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var reply = await Connection.RequestAsync(id, new BookieRequest { Read = new ReadEntryRequest { RequestId = id, LedgerId = ledger, EntryId = entry } }, cancellationToken);
        return reply as BookieEntry ?? new BookieEntry(((BookieReply)reply).Read.Status, -1, 0, ReadOnlyMemory<byte>.Empty);
    }

    public async Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var r = ((BookieReply)await Connection.RequestAsync(id, new BookieRequest { ReadLac = new ReadLacRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).ReadLac;
        return new BookieLedgerState(r.Status, r.LastAddConfirmed, r.LastEntryId, r.Fenced);
    }

    public async Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var r = ((BookieReply)await Connection.RequestAsync(id, new BookieRequest { Fence = new FenceRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).Fence;
        return new BookieLedgerState(r.Status, r.LastAddConfirmed, r.LastEntryId, true);
    }

    public async Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        return ((BookieReply)await Connection.RequestAsync(id, new BookieRequest { Delete = new DeleteLedgerRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).Delete.Status;
    }

    public ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;

    void IFramedClientProtocol.OnFrame(FramedClientConnection connection, in ReadOnlySequence<byte> frame)
    {
        if (PayloadMessageCodec.TryReadEnvelope(frame, ReadReplyEnvelopeField, out var message))
        {
            Span<long> fields = stackalloc long[PayloadField];
            PayloadMessageCodec.Read(message, PayloadField, fields, out var payload);
            var owner = MemoryPool<byte>.Shared.Rent(Math.Max(1, (int)payload.Length));
            payload.CopyTo(owner.Memory.Span);
            connection.Complete(fields[1], new BookieEntry((BookieStatus)(int)fields[4], fields[5], (uint)fields[6], owner.Memory[..(int)payload.Length], owner));
            return;
        }

        var reply = BookieReply.Parser.ParseFrom(frame);
        if (reply.KindCase == BookieReply.KindOneofCase.Hello)
        {
            // The connection's hello, or the answer to a keep-alive probe.
            connection.OnHello(reply);
            return;
        }

        var requestId = reply.KindCase switch
        {
            BookieReply.KindOneofCase.Add => reply.Add.RequestId,
            BookieReply.KindOneofCase.Read => reply.Read.RequestId,
            BookieReply.KindOneofCase.ReadLac => reply.ReadLac.RequestId,
            BookieReply.KindOneofCase.Fence => reply.Fence.RequestId,
            BookieReply.KindOneofCase.Delete => reply.Delete.RequestId,
            BookieReply.KindOneofCase.Error => throw new InvalidDataException($"The bookie refused the connection: {reply.Error.Message} (code {reply.Error.Code})."),
            _ => -1,
        };
        connection.Complete(requestId, reply);
    }

    void IFramedClientProtocol.CheckHello(object reply)
    {
        var hello = ((BookieReply)reply).Hello;
        if (hello.ProtocolVersion != ProtocolVersion)
        {
            throw new BookieUnavailableException(BookieId, $"speaks protocol {hello.ProtocolVersion}, not {ProtocolVersion}");
        }
    }

    IMessage IFramedClientProtocol.CreateKeepAlive(long nonce) => Hello;

    Exception IFramedClientProtocol.Failure(FramedFailure failure, Exception cause) => failure switch
    {
        FramedFailure.ConnectFailed => cause as BookieUnavailableException
            ?? new BookieUnavailableException(BookieId, $"cannot connect to {_host}:{_port}: {cause.Message}", cause),
        FramedFailure.Closed => new BookieUnavailableException(BookieId, "connection broken", cause),
        FramedFailure.SendFailed => new BookieUnavailableException(BookieId, $"send failed: {cause.Message}", cause),
        FramedFailure.TimedOut => new BookieUnavailableException(BookieId, $"no answer within {_timeout.TotalSeconds:F0} s", cause),
        FramedFailure.Silent => new BookieUnavailableException(BookieId, cause.Message, cause),
        _ => new BookieUnavailableException(BookieId, "connection lost", cause),
    };

    /// <summary>Nothing to do: <see cref="BookieDirectory"/> replaces a broken client when it is next asked for.</summary>
    void IFramedClientProtocol.OnClosed(Exception reason)
    {
    }
}
