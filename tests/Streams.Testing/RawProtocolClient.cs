using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Testing;

/// <summary>
/// Speaks the raw data carrier frame by frame, to send the server whatever a broken, slow or stuck client might.
/// </summary>
public sealed class RawProtocolClient : IDisposable
{
    private readonly Socket _socket;

    private RawProtocolClient(Socket socket) => _socket = socket;

    /// <summary>
    /// Connects to a data port. A small <paramref name="receiveBufferSize"/> makes a client that never reads fill its
    /// side quickly, so the server's replies back up.
    /// </summary>
    public static async Task<RawProtocolClient> ConnectAsync(int port, int? receiveBufferSize = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferSize is { } size)
        {
            socket.ReceiveBufferSize = size;
        }

        try
        {
            await socket.ConnectAsync("127.0.0.1", port, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new RawProtocolClient(socket);
    }

    /// <summary>One event framed as writers send it (no routing key).</summary>
    public static byte[] Event(string payload) => Event(System.Text.Encoding.UTF8.GetBytes(payload));

    /// <inheritdoc cref="Event(string)"/>
    public static byte[] Event(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[EventFraming.FrameSize(payload.Length)];
        EventFraming.Write(frame, payload, default, storeKey: false);
        return frame;
    }

    /// <summary>Sends the hello a client opens with; read its answer with <see cref="ReceiveAsync(CancellationToken)"/> if wanted.</summary>
    public Task SendHelloAsync(string client, CancellationToken cancellationToken = default) =>
        SendAsync(new DataRequest { Hello = new Hello { ProtocolVersion = RawFraming.ProtocolVersion, Client = client } }, cancellationToken);

    public async Task SendRawAsync(byte[] bytes, CancellationToken cancellationToken = default) =>
        await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken);

    public Task SendAsync(DataRequest request, CancellationToken cancellationToken = default)
    {
        var body = request.ToByteArray();
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return SendRawAsync(frame, cancellationToken);
    }

    /// <summary>The next reply, or null if the server closed the connection; waits at most 15 s.</summary>
    public async Task<DataReply?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        var header = new byte[4];
        if (!await ReadExactlyAsync(header, timeout.Token))
        {
            return null;
        }

        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        return await ReadExactlyAsync(body, timeout.Token) ? DataReply.Parser.ParseFrom(body) : throw new EndOfStreamException("Closed inside a frame.");
    }

    /// <summary>The next <paramref name="count"/> replies; the server closing the connection first is an error.</summary>
    public async Task<List<DataReply>> ReceiveAsync(int count, CancellationToken cancellationToken = default)
    {
        var replies = new List<DataReply>(count);
        while (replies.Count < count)
        {
            replies.Add(await ReceiveAsync(cancellationToken) ?? throw new EndOfStreamException("The server closed the connection."));
        }

        return replies;
    }

    public void Dispose() => _socket.Dispose();

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                return read == 0 ? false : throw new EndOfStreamException("Closed inside a frame.");
            }

            read += n;
        }

        return true;
    }
}
