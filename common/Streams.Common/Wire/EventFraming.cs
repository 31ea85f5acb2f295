using System.Buffers;
using System.Buffers.Binary;
using System.Text.Unicode;

namespace Streams.Common.Wire;

/// <summary>One event as stored in a segment.</summary>
/// <param name="Payload">The event's bytes.</param>
/// <param name="Key">The routing key's UTF-8 bytes, if the writer stored it (<see cref="HasKey"/>).</param>
/// <param name="HasKey">Whether the writer stored the routing key with the event.</param>
/// <param name="FrameLength">Bytes the whole frame takes in the segment.</param>
public readonly record struct FramedEvent(ReadOnlySequence<byte> Payload, ReadOnlySequence<byte> Key, bool HasKey, int FrameLength);

/// <summary>
/// How events are laid out in a segment (docs/wire-protocol.md, "Event framing"):
/// <code>
/// frame  := header body
/// header := u32 big-endian: bit 31 = routing key present, bits 0-30 = body length
/// body   := [keyLength u16 big-endian, key (UTF-8)]  payload        (the key part only if bit 31 is set)
/// </code>
/// Appends carry whole events only, so a reader positioned at an event boundary (every position and stream cut
/// is one) always finds a header next. Storing the key is optional and costs 2 + key bytes per event.
/// </summary>
public static class EventFraming
{
    /// <summary>Bytes in front of each event's body.</summary>
    public const int HeaderSize = 4;

    /// <summary>Largest event payload a writer may send: 8 MiB, as in Pravega.</summary>
    public const int MaxEventSize = 8 * 1024 * 1024;

    /// <summary>Longest stored routing key, in UTF-8 bytes.</summary>
    public const int MaxRoutingKeyLength = 1024;

    private const uint KeyFlag = 0x8000_0000;
    private const int MaxBodyLength = MaxEventSize + 2 + MaxRoutingKeyLength;

    /// <summary>Bytes a frame takes for a payload and an optional stored key (keyLength -1: none).</summary>
    public static int FrameSize(int payloadLength, int keyLength = -1) =>
        HeaderSize + (keyLength >= 0 ? 2 + keyLength : 0) + payloadLength;

    /// <summary>Writes a whole frame into <paramref name="destination"/>, which must hold <see cref="FrameSize"/> bytes.</summary>
    public static void Write(Span<byte> destination, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key, bool storeKey)
    {
        var keyPart = storeKey ? 2 + key.Length : 0;
        var header = (uint)(keyPart + payload.Length) | (storeKey ? KeyFlag : 0);
        BinaryPrimitives.WriteUInt32BigEndian(destination, header);
        if (storeKey)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination[HeaderSize..], (ushort)key.Length);
            key.CopyTo(destination[(HeaderSize + 2)..]);
        }

        payload.CopyTo(destination[(HeaderSize + keyPart)..]);
    }

    /// <summary>
    /// Takes the next whole event off <paramref name="buffer"/>. Returns false if the buffer ends inside an event;
    /// throws <see cref="InvalidDataException"/> if the header is not a valid event (corrupt data, or a position
    /// that is not an event boundary).
    /// </summary>
    public static bool TryReadEvent(ref ReadOnlySequence<byte> buffer, out FramedEvent framedEvent)
    {
        framedEvent = default;
        if (buffer.Length < HeaderSize)
        {
            return false;
        }

        var (hasKey, bodyLength) = ReadHeader(buffer);
        if (buffer.Length < HeaderSize + bodyLength)
        {
            return false;
        }

        var body = buffer.Slice(HeaderSize, bodyLength);
        var key = ReadOnlySequence<byte>.Empty;
        if (hasKey)
        {
            var keyLength = ReadKeyLength(body, bodyLength);
            key = body.Slice(2, keyLength);
            body = body.Slice(2 + keyLength);
        }

        framedEvent = new FramedEvent(body, key, hasKey, HeaderSize + bodyLength);
        buffer = buffer.Slice(HeaderSize + bodyLength);
        return true;
    }

    /// <summary>
    /// Checks that <paramref name="data"/> is exactly <paramref name="expectedCount"/> whole, well-formed events, each
    /// stored routing key valid UTF-8 (readers decode it as such). Returns null if so, otherwise what is wrong.
    /// </summary>
    public static string? Validate(ReadOnlySequence<byte> data, int expectedCount)
    {
        var count = 0;
        try
        {
            while (!data.IsEmpty)
            {
                if (!TryReadEvent(ref data, out var framed))
                {
                    return "the block ends inside an event";
                }

                if (framed.HasKey && !IsUtf8(framed.Key))
                {
                    return $"the routing key stored with event {count} (counting from 0) is not valid UTF-8";
                }

                count++;
            }
        }
        catch (InvalidDataException e)
        {
            return e.Message;
        }

        return count == expectedCount ? null : $"the block holds {count} events but declares {expectedCount}";
    }

    private static bool IsUtf8(in ReadOnlySequence<byte> key)
    {
        if (key.IsSingleSegment)
        {
            return Utf8.IsValid(key.FirstSpan);
        }

        // A key split across receive buffers: at most MaxRoutingKeyLength bytes, checked in one piece.
        Span<byte> bytes = stackalloc byte[MaxRoutingKeyLength];
        key.CopyTo(bytes);
        return Utf8.IsValid(bytes[..(int)key.Length]);
    }

    private static (bool HasKey, int BodyLength) ReadHeader(in ReadOnlySequence<byte> buffer)
    {
        uint header;
        var first = buffer.FirstSpan;
        if (first.Length >= HeaderSize)
        {
            header = BinaryPrimitives.ReadUInt32BigEndian(first);
        }
        else
        {
            Span<byte> bytes = stackalloc byte[HeaderSize];
            buffer.Slice(0, HeaderSize).CopyTo(bytes);
            header = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        }

        var hasKey = (header & KeyFlag) != 0;
        var length = (int)(header & ~KeyFlag);
        if (length > MaxBodyLength || (!hasKey && length > MaxEventSize))
        {
            throw new InvalidDataException($"invalid event length {length} (the limit is {MaxEventSize} bytes)");
        }

        return (hasKey, length);
    }

    private static int ReadKeyLength(in ReadOnlySequence<byte> body, int bodyLength)
    {
        if (bodyLength < 2)
        {
            throw new InvalidDataException("an event flagged with a routing key is too short to hold one");
        }

        Span<byte> bytes = stackalloc byte[2];
        body.Slice(0, 2).CopyTo(bytes);
        var keyLength = BinaryPrimitives.ReadUInt16BigEndian(bytes);
        if (keyLength > MaxRoutingKeyLength || 2 + keyLength > bodyLength)
        {
            throw new InvalidDataException($"invalid routing key length {keyLength}");
        }

        if (bodyLength - 2 - keyLength > MaxEventSize)
        {
            throw new InvalidDataException($"invalid event length {bodyLength - 2 - keyLength} (the limit is {MaxEventSize} bytes)");
        }

        return keyLength;
    }
}
