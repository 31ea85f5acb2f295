using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Common.Wire;
using Streams.Contracts.Bookie;

namespace Streams.Ledger.Bookies;

/// <summary>
/// A connection to a bookie on the raw framed carrier, multiplexing requests by id. Add payloads are written from
/// the caller's buffer into the socket's pipe. A request with no answer within the timeout, or a broken connection,
/// fails with <see cref="BookieUnavailableException"/>; the client is then broken and a new one must be made.
/// </summary>
internal sealed class RawBookieClient : IBookieClient
{
    private const int AddEnvelopeField = 1;
    private const int ReadReplyEnvelopeField = 2;
    private const int PayloadField = 7;
    private const int ProtocolVersion = 1;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly TimeSpan _timeout;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<object>> _pending = new();
    private readonly Task _receiver;
    private long _nextRequestId;
    private volatile Exception? _broken;

    private RawBookieClient(string bookieId, Socket socket, TimeSpan timeout)
    {
        BookieId = bookieId;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
        _timeout = timeout;
        _receiver = Task.Run(ReceiveAsync);
    }

    public string BookieId { get; }

    public bool IsBroken => _broken is not null;

    public static async Task<RawBookieClient> ConnectAsync(string bookieId, string host, int port, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connect.CancelAfter(timeout);
            await socket.ConnectAsync(host, port, connect.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new BookieUnavailableException(bookieId, $"cannot connect to {host}:{port}: {e.Message}", e);
        }

        var client = new RawBookieClient(bookieId, socket, timeout);
        try
        {
            var hello = (BookieReply)await client.RequestAsync(0, new BookieRequest { Hello = new BookieHello { ProtocolVersion = ProtocolVersion } }, cancellationToken);
            if (hello.Hello.ProtocolVersion != ProtocolVersion)
            {
                throw new BookieUnavailableException(bookieId, $"speaks protocol {hello.Hello.ProtocolVersion}, not {ProtocolVersion}");
            }
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }

        return client;
    }

    public async Task<BookieStatus> AddAsync(long ledger, long entry, long lastAddConfirmed, uint crc, bool recovery, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        Span<long> fields = stackalloc long[PayloadField];
        (fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]) = (id, ledger, entry, lastAddConfirmed, crc, recovery ? 1 : 0);
        var header = fields.ToArray();
        var reply = (BookieReply)await SendAsync(id, writer =>
        {
            var data = new ReadOnlySequence<byte>(payload);
            RawFraming.WriteHeader(writer, PayloadMessageCodec.EnvelopeSize(AddEnvelopeField, header, 0, PayloadField, data.Length));
            PayloadMessageCodec.WriteEnvelope(writer, AddEnvelopeField, header, 0, PayloadField, data);
        }, cancellationToken);
        return reply.Add.Status;
    }

    public async Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var reply = await RequestAsync(id, new BookieRequest { Read = new ReadEntryRequest { RequestId = id, LedgerId = ledger, EntryId = entry } }, cancellationToken);
        return reply as BookieEntry ?? new BookieEntry(((BookieReply)reply).Read.Status, -1, 0, ReadOnlyMemory<byte>.Empty);
    }

    public async Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var r = ((BookieReply)await RequestAsync(id, new BookieRequest { ReadLac = new ReadLacRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).ReadLac;
        return new BookieLedgerState(r.Status, r.LastAddConfirmed, r.LastEntryId, r.Fenced);
    }

    public async Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        var r = ((BookieReply)await RequestAsync(id, new BookieRequest { Fence = new FenceRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).Fence;
        return new BookieLedgerState(r.Status, r.LastAddConfirmed, r.LastEntryId, true);
    }

    public async Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var id = Interlocked.Increment(ref _nextRequestId);
        return ((BookieReply)await RequestAsync(id, new BookieRequest { Delete = new DeleteLedgerRequest { RequestId = id, LedgerId = ledger } }, cancellationToken)).Delete.Status;
    }

    public async ValueTask DisposeAsync()
    {
        Break(new ObjectDisposedException(nameof(RawBookieClient)));
        await _receiver;
        await _stream.DisposeAsync();
        _writeLock.Dispose();
    }

    private Task<object> RequestAsync(long id, IMessage request, CancellationToken cancellationToken) =>
        SendAsync(id, writer => RawFraming.WriteMessage(writer, request), cancellationToken);

    private async Task<object> SendAsync(long id, Action<IBufferWriter<byte>> write, CancellationToken cancellationToken)
    {
        var pending = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = pending;
        try
        {
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                if (_broken is { } broken)
                {
                    throw new BookieUnavailableException(BookieId, "connection broken", broken);
                }

                write(_output);
                await _output.FlushAsync(cancellationToken);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                Break(e);
                throw new BookieUnavailableException(BookieId, $"send failed: {e.Message}", e);
            }
            finally
            {
                _writeLock.Release();
            }

            try
            {
                return await pending.Task.WaitAsync(_timeout, cancellationToken);
            }
            catch (TimeoutException e)
            {
                // A bookie that does not answer is as good as down: break the connection so every request learns it.
                Break(e);
                throw new BookieUnavailableException(BookieId, $"no answer within {_timeout.TotalSeconds:F0} s", e);
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private void Break(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _broken, reason, null) is not null)
        {
            return;
        }

        _socket.Dispose();
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var pending))
            {
                pending.TrySetException(new BookieUnavailableException(BookieId, "connection lost", reason));
            }
        }
    }

    private async Task ReceiveAsync()
    {
        var reader = new FramedMessageReader(_input, RawFraming.DefaultMaxFrameSize);
        try
        {
            while (await reader.MoveNextAsync())
            {
                Handle(reader.Current);
            }

            Break(new IOException("The bookie closed the connection."));
        }
        catch (Exception e)
        {
            Break(e);
        }
        finally
        {
            reader.Release();
            await _input.CompleteAsync();
        }
    }

    private void Handle(in ReadOnlySequence<byte> frame)
    {
        if (PayloadMessageCodec.TryReadEnvelope(frame, ReadReplyEnvelopeField, out var message))
        {
            Span<long> fields = stackalloc long[PayloadField];
            PayloadMessageCodec.Read(message, PayloadField, fields, out var payload);
            var owner = MemoryPool<byte>.Shared.Rent(Math.Max(1, (int)payload.Length));
            payload.CopyTo(owner.Memory.Span);
            Complete(fields[1], new BookieEntry((BookieStatus)(int)fields[4], fields[5], (uint)fields[6], owner.Memory[..(int)payload.Length], owner));
            return;
        }

        var reply = BookieReply.Parser.ParseFrom(frame);
        var requestId = reply.KindCase switch
        {
            BookieReply.KindOneofCase.Add => reply.Add.RequestId,
            BookieReply.KindOneofCase.Read => reply.Read.RequestId,
            BookieReply.KindOneofCase.ReadLac => reply.ReadLac.RequestId,
            BookieReply.KindOneofCase.Fence => reply.Fence.RequestId,
            BookieReply.KindOneofCase.Delete => reply.Delete.RequestId,
            BookieReply.KindOneofCase.Hello => 0,
            BookieReply.KindOneofCase.Error => throw new InvalidDataException($"The bookie refused the connection: {reply.Error.Message} (code {reply.Error.Code})."),
            _ => -1,
        };
        Complete(requestId, reply);
    }

    private void Complete(long requestId, object reply)
    {
        if (_pending.TryRemove(requestId, out var pending) && pending.TrySetResult(reply))
        {
            return;
        }

        (reply as IDisposable)?.Dispose();
    }
}
