using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Grpc.Core;

namespace Streams.Common.Wire;

/// <summary>
/// The raw data carrier's framing: a 4-byte big-endian length, then one protobuf message
/// (DataRequest from client to server, DataReply back). See docs/wire-protocol.md.
/// </summary>
public static class RawFraming
{
    /// <summary>Bytes of the length prefix; the length does not count them.</summary>
    public const int HeaderSize = 4;

    /// <summary>Current version of the raw carrier, exchanged in Hello/HelloReply.</summary>
    public const int ProtocolVersion = 1;

    /// <summary>Largest frame: the largest event (8 MiB) plus framing, with room to spare.</summary>
    public const int DefaultMaxFrameSize = 16 * 1024 * 1024;

    /// <summary>Takes one whole frame off <paramref name="buffer"/>, if it holds one.</summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out ReadOnlySequence<byte> frame)
    {
        frame = default;
        if (buffer.Length < HeaderSize)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length > (uint)maxFrameSize)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Frame of {length} bytes exceeds the limit of {maxFrameSize} bytes."));
        }

        if (buffer.Length < HeaderSize + length)
        {
            return false;
        }

        frame = buffer.Slice(HeaderSize, length);
        buffer = buffer.Slice(frame.End);
        return true;
    }

    /// <summary>Writes a length-prefixed protobuf message.</summary>
    public static void WriteMessage(IBufferWriter<byte> writer, IMessage message)
    {
        var size = message.CalculateSize();
        BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(HeaderSize), (uint)size);
        writer.Advance(HeaderSize);
        message.WriteTo(writer);
    }

    /// <summary>Writes the length prefix of a frame whose body the caller writes next.</summary>
    public static void WriteHeader(IBufferWriter<byte> writer, int bodyLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(HeaderSize), (uint)bodyLength);
        writer.Advance(HeaderSize);
    }
}
