using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Contracts.SegmentStore;

namespace Streams.Integration.Tests;

/// <summary>Speaks the raw data carrier byte by byte, to send the server whatever a broken client might.</summary>
internal sealed class RawProtocolClient : IDisposable
{
    private readonly TcpClient _tcp = new();
    private NetworkStream _stream = null!;

    public static async Task<RawProtocolClient> ConnectAsync(int port)
    {
        var client = new RawProtocolClient();
        await client._tcp.ConnectAsync("127.0.0.1", port);
        client._stream = client._tcp.GetStream();
        return client;
    }

    /// <summary>One event framed as writers send it (no routing key).</summary>
    public static byte[] Event(string payload)
    {
        var body = System.Text.Encoding.UTF8.GetBytes(payload);
        var frame = new byte[Common.Wire.EventFraming.FrameSize(body.Length)];
        Common.Wire.EventFraming.Write(frame, body, default, storeKey: false);
        return frame;
    }

    public Task SendRawAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    public Task SendAsync(DataRequest request)
    {
        var body = request.ToByteArray();
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return SendRawAsync(frame);
    }

    /// <summary>The next reply, or null if the server closed the connection.</summary>
    public async Task<DataReply?> ReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var header = new byte[4];
        if (!await ReadExactlyAsync(header, timeout.Token))
        {
            return null;
        }

        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        return await ReadExactlyAsync(body, timeout.Token) ? DataReply.Parser.ParseFrom(body) : throw new EndOfStreamException("Closed inside a frame.");
    }

    public void Dispose() => _tcp.Dispose();

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
            {
                return read == 0 ? false : throw new EndOfStreamException("Closed inside a frame.");
            }

            read += n;
        }

        return true;
    }
}
