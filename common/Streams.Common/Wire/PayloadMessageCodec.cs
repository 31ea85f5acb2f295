using System.Buffers;

namespace Streams.Common.Wire;

/// <summary>
/// Reads and writes protobuf messages made of varint fields (numbers 1 to 15) and one bytes field, the payload,
/// without copying the payload: it stays a slice of the input when read, and is written from the caller's buffers.
/// This is the shape of every message that carries events or entries (AppendBlock, ReadSegmentReply,
/// AddEntryRequest, ReadEntryReply). Output is byte-for-byte what Google.Protobuf writes: fields in number order,
/// proto3 zero values omitted unless marked present (proto3 <c>optional</c>).
/// Fields are addressed by number: <c>fields[n]</c> holds field n.
/// </summary>
public static class PayloadMessageCodec
{
    /// <summary>Highest field number the codec handles (one-byte tags).</summary>
    public const int MaxField = 15;

    /// <summary>
    /// Reads a message; other length-delimited fields (strings) are skipped. Returns a bit mask of the varint fields
    /// present. Throws <see cref="InvalidDataException"/> if the message is malformed.
    /// </summary>
    public static ulong Read(in ReadOnlySequence<byte> message, int payloadField, Span<long> fields, out ReadOnlySequence<byte> payload)
    {
        payload = ReadOnlySequence<byte>.Empty;
        ulong present = 0;
        var reader = new SequenceReader<byte>(message);
        while (!reader.End)
        {
            if (!ProtoWire.TryReadVarint(ref reader, out var tag))
            {
                throw Malformed();
            }

            var field = (int)(tag >> 3);
            var wireType = (int)(tag & 7);
            if (field == payloadField && wireType == ProtoWire.WireLengthDelimited)
            {
                if (!ProtoWire.TryReadLengthDelimited(ref reader, out payload))
                {
                    throw Malformed();
                }
            }
            else if (wireType == ProtoWire.WireVarint && field is >= 1 and <= MaxField && field < fields.Length)
            {
                if (!ProtoWire.TryReadVarint(ref reader, out var value))
                {
                    throw Malformed();
                }

                fields[field] = (long)value;
                present |= 1UL << field;
            }
            else if (!ProtoWire.TrySkip(ref reader, wireType))
            {
                throw Malformed();
            }
        }

        return present;
    }

    /// <summary>Reads an envelope (a oneof message) if it consists of exactly one field <paramref name="envelopeField"/>.</summary>
    public static bool TryReadEnvelope(in ReadOnlySequence<byte> envelope, int envelopeField, out ReadOnlySequence<byte> message)
    {
        message = default;
        var reader = new SequenceReader<byte>(envelope);
        return ProtoWire.TryReadVarint(ref reader, out var tag)
            && tag == ProtoWire.Tag(envelopeField, ProtoWire.WireLengthDelimited)
            && ProtoWire.TryReadLengthDelimited(ref reader, out message)
            && reader.End;
    }

    /// <summary>Size of the message.</summary>
    public static int Size(ReadOnlySpan<long> fields, ulong present, int payloadField, long payloadLength)
    {
        var size = 0;
        for (var field = 1; field < fields.Length; field++)
        {
            if (fields[field] != 0 || (present & (1UL << field)) != 0)
            {
                size += ProtoWire.Int64FieldSize(field, fields[field]);
            }
        }

        return size + (payloadLength != 0 ? ProtoWire.LengthDelimitedFieldSize(payloadField, payloadLength) : 0);
    }

    /// <summary>Size of the message wrapped as field <paramref name="envelopeField"/> of an envelope.</summary>
    public static int EnvelopeSize(int envelopeField, ReadOnlySpan<long> fields, ulong present, int payloadField, long payloadLength) =>
        ProtoWire.LengthDelimitedFieldSize(envelopeField, Size(fields, present, payloadField, payloadLength));

    /// <summary>Writes the message: varint fields below the payload's number, the payload, then the rest.</summary>
    public static void Write(IBufferWriter<byte> writer, ReadOnlySpan<long> fields, ulong present, int payloadField, in ReadOnlySequence<byte> payload)
    {
        for (var field = 1; field < fields.Length; field++)
        {
            if (field == payloadField && !payload.IsEmpty)
            {
                ProtoWire.WriteBytesField(writer, payloadField, payload);
            }

            if (fields[field] != 0 || (present & (1UL << field)) != 0)
            {
                ProtoWire.WriteInt64Field(writer, field, fields[field]);
            }
        }

        if (payloadField >= fields.Length && !payload.IsEmpty)
        {
            ProtoWire.WriteBytesField(writer, payloadField, payload);
        }
    }

    /// <summary>Writes the message wrapped as field <paramref name="envelopeField"/> of an envelope.</summary>
    public static void WriteEnvelope(IBufferWriter<byte> writer, int envelopeField, ReadOnlySpan<long> fields, ulong present, int payloadField, in ReadOnlySequence<byte> payload)
    {
        ProtoWire.WriteTag(writer, envelopeField, ProtoWire.WireLengthDelimited);
        ProtoWire.WriteVarint(writer, (ulong)Size(fields, present, payloadField, payload.Length));
        Write(writer, fields, present, payloadField, payload);
    }

    private static InvalidDataException Malformed() => new("Malformed message: a field runs past its end.");
}
