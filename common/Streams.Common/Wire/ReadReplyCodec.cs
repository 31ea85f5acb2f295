using System.Buffers;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Wire;

/// <summary>The fields of a ReadSegmentReply other than its data.</summary>
internal readonly record struct ReadReplyHeader(long RequestId, ReadStatus Status, long Offset, long SegmentLength, long StartOffset, bool Sealed);

/// <summary>
/// Hand-written codec for ReadSegmentReply: the server writes data straight from its cache into the transport,
/// the client reads it as a slice of its receive buffer. Byte-for-byte the encoding Google.Protobuf produces.
/// </summary>
internal static class ReadReplyCodec
{
    /// <summary>ReadSegmentReply's field number in DataReply.</summary>
    public const int EnvelopeField = 4;

    private const int RequestIdField = 1;
    private const int StatusField = 2;
    private const int OffsetField = 3;
    private const int SegmentLengthField = 4;
    private const int StartOffsetField = 5;
    private const int SealedField = 6;
    private const int DataField = 7;

    public static int Size(in ReadReplyHeader header, long dataLength)
    {
        var size = 0;
        size += header.RequestId != 0 ? ProtoWire.Int64FieldSize(RequestIdField, header.RequestId) : 0;
        size += header.Status != 0 ? ProtoWire.Int64FieldSize(StatusField, (long)header.Status) : 0;
        size += header.Offset != 0 ? ProtoWire.Int64FieldSize(OffsetField, header.Offset) : 0;
        size += header.SegmentLength != 0 ? ProtoWire.Int64FieldSize(SegmentLengthField, header.SegmentLength) : 0;
        size += header.StartOffset != 0 ? ProtoWire.Int64FieldSize(StartOffsetField, header.StartOffset) : 0;
        size += header.Sealed ? ProtoWire.Int64FieldSize(SealedField, 1) : 0;
        size += dataLength != 0 ? ProtoWire.LengthDelimitedFieldSize(DataField, dataLength) : 0;
        return size;
    }

    public static int EnvelopeSize(in ReadReplyHeader header, long dataLength) =>
        ProtoWire.LengthDelimitedFieldSize(EnvelopeField, Size(header, dataLength));

    public static void Write(IBufferWriter<byte> writer, in ReadReplyHeader header, in ReadOnlySequence<byte> data)
    {
        if (header.RequestId != 0)
        {
            ProtoWire.WriteInt64Field(writer, RequestIdField, header.RequestId);
        }

        if (header.Status != 0)
        {
            ProtoWire.WriteInt64Field(writer, StatusField, (long)header.Status);
        }

        if (header.Offset != 0)
        {
            ProtoWire.WriteInt64Field(writer, OffsetField, header.Offset);
        }

        if (header.SegmentLength != 0)
        {
            ProtoWire.WriteInt64Field(writer, SegmentLengthField, header.SegmentLength);
        }

        if (header.StartOffset != 0)
        {
            ProtoWire.WriteInt64Field(writer, StartOffsetField, header.StartOffset);
        }

        if (header.Sealed)
        {
            ProtoWire.WriteInt64Field(writer, SealedField, 1);
        }

        if (!data.IsEmpty)
        {
            ProtoWire.WriteBytesField(writer, DataField, data);
        }
    }

    public static void WriteEnvelope(IBufferWriter<byte> writer, in ReadReplyHeader header, in ReadOnlySequence<byte> data)
    {
        ProtoWire.WriteTag(writer, EnvelopeField, ProtoWire.WireLengthDelimited);
        ProtoWire.WriteVarint(writer, (ulong)Size(header, data.Length));
        Write(writer, header, data);
    }

    /// <summary>Reads a DataReply if it consists of exactly one ReadSegmentReply field.</summary>
    public static bool TryReadEnvelope(in ReadOnlySequence<byte> envelope, out ReadReplyHeader header, out ReadOnlySequence<byte> data)
    {
        header = default;
        data = default;
        var reader = new SequenceReader<byte>(envelope);
        if (!ProtoWire.TryReadVarint(ref reader, out var tag) || tag != ProtoWire.Tag(EnvelopeField, ProtoWire.WireLengthDelimited)
            || !ProtoWire.TryReadLengthDelimited(ref reader, out var body) || !reader.End)
        {
            return false;
        }

        Read(body, out header, out data);
        return true;
    }

    /// <summary>Reads a ReadSegmentReply body; <paramref name="data"/> is a slice of <paramref name="message"/>.</summary>
    public static void Read(in ReadOnlySequence<byte> message, out ReadReplyHeader header, out ReadOnlySequence<byte> data)
    {
        long requestId = 0, offset = 0, length = 0, start = 0;
        var status = ReadStatus.Unspecified;
        var isSealed = false;
        data = ReadOnlySequence<byte>.Empty;
        var reader = new SequenceReader<byte>(message);
        while (!reader.End)
        {
            if (!ProtoWire.TryReadVarint(ref reader, out var tag))
            {
                throw Malformed();
            }

            var field = (int)(tag >> 3);
            var wireType = (int)(tag & 7);
            if (field == DataField && wireType == ProtoWire.WireLengthDelimited)
            {
                if (!ProtoWire.TryReadLengthDelimited(ref reader, out data))
                {
                    throw Malformed();
                }

                continue;
            }

            if (wireType != ProtoWire.WireVarint || field < RequestIdField || field > SealedField)
            {
                if (!ProtoWire.TrySkip(ref reader, wireType))
                {
                    throw Malformed();
                }

                continue;
            }

            if (!ProtoWire.TryReadVarint(ref reader, out var value))
            {
                throw Malformed();
            }

            switch (field)
            {
                case RequestIdField: requestId = (long)value; break;
                case StatusField: status = (ReadStatus)(int)value; break;
                case OffsetField: offset = (long)value; break;
                case SegmentLengthField: length = (long)value; break;
                case StartOffsetField: start = (long)value; break;
                default: isSealed = value != 0; break;
            }
        }

        header = new ReadReplyHeader(requestId, status, offset, length, start, isSealed);
    }

    private static InvalidDataException Malformed() => new("Malformed ReadSegmentReply message.");
}
