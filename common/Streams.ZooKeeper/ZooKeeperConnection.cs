using System.Buffers.Binary;
using System.Net.Sockets;
using Streams.ZooKeeper.Protocol;

namespace Streams.ZooKeeper;

/// <summary>A reply: the header fields and the record bytes after them.</summary>
internal readonly record struct ZooKeeperReply(int Xid, long Zxid, ZooKeeperError Error, byte[] Body);

/// <summary>
/// One TCP connection to one ZooKeeper server. Requests are answered in the order sent, so pending requests form a
/// FIFO matched by xid; notifications (xid -1), pings (-2) and set-watches (-8) arrive out of band.
/// </summary>
internal sealed class ZooKeeperConnection : IAsyncDisposable
{
    private const int MaxPacket = 16 * 1024 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Queue<Pending> _pending = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastSend = Environment.TickCount64;
    private long _lastReceive = Environment.TickCount64;
    private Exception? _closeReason;

    private ZooKeeperConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Completes when the connection is gone.</summary>
    public Task Closed => _closed.Task;

    public long MillisSinceSend => Environment.TickCount64 - Interlocked.Read(ref _lastSend);

    public long MillisSinceReceive => Environment.TickCount64 - Interlocked.Read(ref _lastReceive);

    /// <summary>Connects and runs the session handshake. Returns the connection and the server's answer.</summary>
    public static async Task<(ZooKeeperConnection Connection, int Timeout, long SessionId, byte[] Password)> ConnectAsync(
        string host, int port, long lastZxid, int timeoutMs, long sessionId, byte[] password, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(connectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new ZooKeeperConnection(socket);
        try
        {
            var writer = new JuteWriter();
            var frame = writer.BeginFrame();
            writer.WriteInt(0); // protocol version
            writer.WriteLong(lastZxid);
            writer.WriteInt(timeoutMs);
            writer.WriteLong(sessionId);
            writer.WriteBuffer(password);
            writer.WriteBool(false); // read-only
            writer.FinishFrame(frame);
            await connection._stream.WriteAsync(writer.Written, timeout.Token);

            var packet = await connection.ReadPacketAsync(timeout.Token) ?? throw new IOException("The server closed the connection during the handshake.");
            var reader = new JuteReader(packet);
            reader.ReadInt(); // protocol version
            var negotiated = reader.ReadInt();
            var id = reader.ReadLong();
            var secret = reader.ReadBuffer() ?? [];
            return (connection, negotiated, id, secret);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts the receive loop: replies complete pending requests, out-of-band packets (notifications, pings) go to
    /// <paramref name="outOfBand"/>, and every packet's zxid to <paramref name="zxidSeen"/>.
    /// </summary>
    public void Start(Action<ZooKeeperReply> outOfBand, Action<long> zxidSeen) => _ = ReceiveLoopAsync(outOfBand, zxidSeen);

    /// <summary>
    /// Sends a request. The reply completes the returned task (with any error code, for the caller to judge);
    /// <paramref name="onReply"/> runs on the receive loop before later packets are handled (watch registration).
    /// </summary>
    public async Task<ZooKeeperReply> SendAsync(int xid, int type, Action<JuteWriter>? body, Action<ZooKeeperReply>? onReply, CancellationToken cancellationToken)
    {
        var writer = new JuteWriter();
        var frame = writer.BeginFrame();
        writer.WriteInt(xid);
        writer.WriteInt(type);
        body?.Invoke(writer);
        writer.FinishFrame(frame);

        var pending = new Pending(xid, onReply);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_closeReason is { } reason)
            {
                throw new ZooKeeperException(ZooKeeperError.ConnectionLoss, null, reason);
            }

            if (xid >= 0)
            {
                lock (_pending)
                {
                    _pending.Enqueue(pending);
                }
            }

            await _stream.WriteAsync(writer.Written, CancellationToken.None);
            Interlocked.Exchange(ref _lastSend, Environment.TickCount64);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Close(e);
            throw new ZooKeeperException(ZooKeeperError.ConnectionLoss, null, e);
        }
        finally
        {
            _writeLock.Release();
        }

        return xid >= 0 ? await pending.Reply.Task : default;
    }

    public void Close(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        _socket.Dispose();
        List<Pending> failed;
        lock (_pending)
        {
            failed = [.. _pending];
            _pending.Clear();
        }

        foreach (var pending in failed)
        {
            pending.Reply.TrySetException(new ZooKeeperException(ZooKeeperError.ConnectionLoss, null, reason));
        }

        _closed.TrySetResult();
    }

    public async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(ZooKeeperConnection)));
        await _stream.DisposeAsync();

        // _writeLock is not disposed: a sender racing with the close may still wait on or release it, and must see
        // the close reason (ConnectionLoss), not an ObjectDisposedException. It holds no wait handle, so nothing leaks.
    }

    private async Task ReceiveLoopAsync(Action<ZooKeeperReply> outOfBand, Action<long> zxidSeen)
    {
        try
        {
            while (await ReadPacketAsync(CancellationToken.None) is { } packet)
            {
                var reader = new JuteReader(packet);
                var reply = new ZooKeeperReply(reader.ReadInt(), reader.ReadLong(), (ZooKeeperError)reader.ReadInt(), packet[16..]);
                if (reply.Zxid > 0)
                {
                    zxidSeen(reply.Zxid);
                }

                if (reply.Xid < 0)
                {
                    outOfBand(reply);
                    continue;
                }

                Pending? pending;
                lock (_pending)
                {
                    _pending.TryDequeue(out pending);
                }

                if (pending is null || pending.Xid != reply.Xid)
                {
                    throw new InvalidDataException($"Reply xid {reply.Xid} does not match the oldest request ({pending?.Xid}).");
                }

                pending.OnReply?.Invoke(reply);
                pending.Reply.TrySetResult(reply);
            }

            Close(new IOException("The ZooKeeper server closed the connection."));
        }
        catch (Exception e)
        {
            Close(e);
        }
    }

    private async Task<byte[]?> ReadPacketAsync(CancellationToken cancellationToken)
    {
        var header = new byte[4];
        if (!await ReadExactlyAsync(header, cancellationToken))
        {
            return null;
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        if (length is < 0 or > MaxPacket)
        {
            throw new InvalidDataException($"ZooKeeper packet length {length} is invalid.");
        }

        var packet = new byte[length];
        return await ReadExactlyAsync(packet, cancellationToken) ? packet : throw new IOException("The connection closed inside a packet.");
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
            {
                return read == 0 && buffer.Length > 0 ? false : throw new IOException("The connection closed inside a packet.");
            }

            read += n;
            Interlocked.Exchange(ref _lastReceive, Environment.TickCount64);
        }

        return true;
    }

    private sealed class Pending(int xid, Action<ZooKeeperReply>? onReply)
    {
        public int Xid { get; } = xid;

        public Action<ZooKeeperReply>? OnReply { get; } = onReply;

        public TaskCompletionSource<ZooKeeperReply> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
