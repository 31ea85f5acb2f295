using System.Buffers;
using System.Numerics;

namespace Streams.Common.Wire;

/// <summary>
/// Minimal protobuf wire-format primitives (protobuf.dev/programming-guides/encoding) for the few messages
/// that carry event payloads. Those are read and written by hand so that payload bytes stay slices of
/// transport buffers: Google.Protobuf copies every bytes field into a fresh array.
/// </summary>
internal static class ProtoWire
{
    public const int WireVarint = 0;
    public const int WireFixed64 = 1;
    public const int WireLengthDelimited = 2;
    public const int WireFixed32 = 5;

    public static uint Tag(int field, int wireType) => (uint)((field << 3) | wireType);

    public static int VarintSize(ulong value) => ((63 - BitOperations.LeadingZeroCount(value | 1)) / 7) + 1;

    public static int TagSize(int field) => VarintSize(Tag(field, 0));

    /// <summary>Size of an int64/int32/enum field holding <paramref name="value"/> (negative values take 10 bytes).</summary>
    public static int Int64FieldSize(int field, long value) => TagSize(field) + VarintSize((ulong)value);

    public static int LengthDelimitedFieldSize(int field, long length) => TagSize(field) + VarintSize((ulong)length) + (int)length;

    public static int WriteVarint(Span<byte> destination, ulong value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    public static void WriteVarint(IBufferWriter<byte> writer, ulong value)
    {
        var span = writer.GetSpan(10);
        writer.Advance(WriteVarint(span, value));
    }

    public static void WriteTag(IBufferWriter<byte> writer, int field, int wireType) => WriteVarint(writer, Tag(field, wireType));

    public static void WriteInt64Field(IBufferWriter<byte> writer, int field, long value)
    {
        WriteTag(writer, field, WireVarint);
        WriteVarint(writer, (ulong)value);
    }

    public static void WriteBytesField(IBufferWriter<byte> writer, int field, in ReadOnlySequence<byte> data)
    {
        WriteTag(writer, field, WireLengthDelimited);
        WriteVarint(writer, (ulong)data.Length);
        foreach (var segment in data)
        {
            writer.Write(segment.Span);
        }
    }

    public static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Skips a field of the given wire type; false if the data is malformed.</summary>
    public static bool TrySkip(ref SequenceReader<byte> reader, int wireType)
    {
        switch (wireType)
        {
            case WireVarint:
                return TryReadVarint(ref reader, out _);
            case WireFixed64:
                return reader.TryAdvance(8);
            case WireFixed32:
                return reader.TryAdvance(4);
            case WireLengthDelimited:
                return TryReadVarint(ref reader, out var length) && length <= (ulong)reader.Remaining && reader.TryAdvance((long)length);
            default:
                return false;
        }
    }

    /// <summary>Reads a length-delimited field's body as a slice of the underlying sequence.</summary>
    public static bool TryReadLengthDelimited(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> body)
    {
        body = default;
        if (!TryReadVarint(ref reader, out var length) || length > (ulong)reader.Remaining)
        {
            return false;
        }

        body = reader.UnreadSequence.Slice(0, (long)length);
        reader.Advance((long)length);
        return true;
    }

    private static bool TryAdvance(this ref SequenceReader<byte> reader, long count)
    {
        if (reader.Remaining < count)
        {
            return false;
        }

        reader.Advance(count);
        return true;
    }
}
