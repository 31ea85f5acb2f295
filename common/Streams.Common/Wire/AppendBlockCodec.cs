using System.Buffers;

namespace Streams.Common.Wire;

/// <summary>The header fields of an AppendBlock (segmentstore.proto).</summary>
internal readonly record struct AppendBlockHeader(long RequestId, long LastEventNumber, int EventCount, long? ExpectedOffset);

/// <summary>
/// Hand-written codec for an AppendRequest/DataRequest envelope holding one AppendBlock: the block's data
/// stays a slice of the receive buffer on the server, and is written from the caller's buffers on the client.
/// Byte-for-byte the encoding Google.Protobuf produces for the same message.
/// </summary>
internal static class AppendBlockCodec
{
    /// <summary>AppendBlock's field number in both AppendRequest and DataRequest.</summary>
    public const int EnvelopeField = 2;

    private const int RequestIdField = 1;
    private const int LastEventNumberField = 2;
    private const int EventCountField = 3;
    private const int ExpectedOffsetField = 4;
    private const int DataField = 5;

    /// <summary>
    /// Reads <paramref name="envelope"/> if it consists of exactly one AppendBlock field. Returns false for any
    /// other message (parse it with Google.Protobuf); throws <see cref="InvalidDataException"/> for a malformed block.
    /// </summary>
    public static bool TryReadEnvelope(in ReadOnlySequence<byte> envelope, out AppendBlockHeader header, out ReadOnlySequence<byte> data)
    {
        header = default;
        data = default;
        var reader = new SequenceReader<byte>(envelope);
        if (!ProtoWire.TryReadVarint(ref reader, out var tag) || tag != ProtoWire.Tag(EnvelopeField, ProtoWire.WireLengthDelimited))
        {
            return false;
        }

        if (!ProtoWire.TryReadLengthDelimited(ref reader, out var block) || !reader.End)
        {
            return false;
        }

        Read(block, out header, out data);
        return true;
    }

    /// <summary>Reads the body of an AppendBlock message.</summary>
    public static void Read(in ReadOnlySequence<byte> block, out AppendBlockHeader header, out ReadOnlySequence<byte> data)
    {
        long requestId = 0, lastEventNumber = 0;
        var eventCount = 0;
        long? expectedOffset = null;
        data = ReadOnlySequence<byte>.Empty;
        var reader = new SequenceReader<byte>(block);
        while (!reader.End)
        {
            if (!ProtoWire.TryReadVarint(ref reader, out var tag))
            {
                throw Malformed();
            }

            var field = (int)(tag >> 3);
            var wireType = (int)(tag & 7);
            ulong value;
            switch (field)
            {
                case RequestIdField when wireType == ProtoWire.WireVarint:
                    requestId = ProtoWire.TryReadVarint(ref reader, out value) ? (long)value : throw Malformed();
                    break;
                case LastEventNumberField when wireType == ProtoWire.WireVarint:
                    lastEventNumber = ProtoWire.TryReadVarint(ref reader, out value) ? (long)value : throw Malformed();
                    break;
                case EventCountField when wireType == ProtoWire.WireVarint:
                    eventCount = ProtoWire.TryReadVarint(ref reader, out value) ? (int)value : throw Malformed();
                    break;
                case ExpectedOffsetField when wireType == ProtoWire.WireVarint:
                    expectedOffset = ProtoWire.TryReadVarint(ref reader, out value) ? (long)value : throw Malformed();
                    break;
                case DataField when wireType == ProtoWire.WireLengthDelimited:
                    if (!ProtoWire.TryReadLengthDelimited(ref reader, out data))
                    {
                        throw Malformed();
                    }

                    break;
                default:
                    if (!ProtoWire.TrySkip(ref reader, wireType))
                    {
                        throw Malformed();
                    }

                    break;
            }
        }

        header = new AppendBlockHeader(requestId, lastEventNumber, eventCount, expectedOffset);
    }

    /// <summary>Size of the AppendBlock message body.</summary>
    public static int BlockSize(in AppendBlockHeader header, long dataLength)
    {
        var size = 0;
        if (header.RequestId != 0)
        {
            size += ProtoWire.Int64FieldSize(RequestIdField, header.RequestId);
        }

        if (header.LastEventNumber != 0)
        {
            size += ProtoWire.Int64FieldSize(LastEventNumberField, header.LastEventNumber);
        }

        if (header.EventCount != 0)
        {
            size += ProtoWire.Int64FieldSize(EventCountField, header.EventCount);
        }

        if (header.ExpectedOffset is { } expected)
        {
            size += ProtoWire.Int64FieldSize(ExpectedOffsetField, expected);
        }

        if (dataLength != 0)
        {
            size += ProtoWire.LengthDelimitedFieldSize(DataField, dataLength);
        }

        return size;
    }

    /// <summary>Size of the envelope (AppendRequest or DataRequest) holding the block.</summary>
    public static int EnvelopeSize(in AppendBlockHeader header, long dataLength) =>
        ProtoWire.LengthDelimitedFieldSize(EnvelopeField, BlockSize(header, dataLength));

    /// <summary>Writes the envelope holding the block.</summary>
    public static void WriteEnvelope(IBufferWriter<byte> writer, in AppendBlockHeader header, in ReadOnlySequence<byte> data)
    {
        ProtoWire.WriteTag(writer, EnvelopeField, ProtoWire.WireLengthDelimited);
        ProtoWire.WriteVarint(writer, (ulong)BlockSize(header, data.Length));
        if (header.RequestId != 0)
        {
            ProtoWire.WriteInt64Field(writer, RequestIdField, header.RequestId);
        }

        if (header.LastEventNumber != 0)
        {
            ProtoWire.WriteInt64Field(writer, LastEventNumberField, header.LastEventNumber);
        }

        if (header.EventCount != 0)
        {
            ProtoWire.WriteInt64Field(writer, EventCountField, header.EventCount);
        }

        if (header.ExpectedOffset is { } expected)
        {
            ProtoWire.WriteInt64Field(writer, ExpectedOffsetField, expected);
        }

        if (!data.IsEmpty)
        {
            ProtoWire.WriteBytesField(writer, DataField, data);
        }
    }

    private static InvalidDataException Malformed() => new("Malformed AppendBlock message.");
}
