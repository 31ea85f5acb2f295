using System.Buffers;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Wire;

/// <summary>The fields of a ReadSegmentReply other than its data.</summary>
public readonly record struct ReadReplyHeader(long RequestId, ReadStatus Status, long Offset, long SegmentLength, long StartOffset, bool Sealed);

/// <summary>
/// ReadSegmentReply, written from the server's cache and read into the client's buffers without intermediate copies
/// (<see cref="PayloadMessageCodec"/>).
/// </summary>
public static class ReadReplyCodec
{
    /// <summary>ReadSegmentReply's field number in DataReply.</summary>
    public const int EnvelopeField = 4;

    private const int DataField = 7;

    /// <summary>Encoded size of a ReadSegmentReply with <paramref name="dataLength"/> bytes of data.</summary>
    public static int Size(in ReadReplyHeader header, long dataLength)
    {
        Span<long> fields = stackalloc long[DataField];
        Fill(header, fields);
        return PayloadMessageCodec.Size(fields, 0, DataField, dataLength);
    }

    /// <summary>Encoded size of the reply as field <see cref="EnvelopeField"/> of a DataReply.</summary>
    public static int EnvelopeSize(in ReadReplyHeader header, long dataLength) =>
        ProtoWire.LengthDelimitedFieldSize(EnvelopeField, Size(header, dataLength));

    /// <summary>Writes a ReadSegmentReply.</summary>
    public static void Write(IBufferWriter<byte> writer, in ReadReplyHeader header, in ReadOnlySequence<byte> data)
    {
        Span<long> fields = stackalloc long[DataField];
        Fill(header, fields);
        PayloadMessageCodec.Write(writer, fields, 0, DataField, data);
    }

    /// <summary>Writes the reply as field <see cref="EnvelopeField"/> of a DataReply.</summary>
    public static void WriteEnvelope(IBufferWriter<byte> writer, in ReadReplyHeader header, in ReadOnlySequence<byte> data)
    {
        Span<long> fields = stackalloc long[DataField];
        Fill(header, fields);
        PayloadMessageCodec.WriteEnvelope(writer, EnvelopeField, fields, 0, DataField, data);
    }

    /// <summary>Reads a DataReply if it consists of exactly one ReadSegmentReply field.</summary>
    public static bool TryReadEnvelope(in ReadOnlySequence<byte> envelope, out ReadReplyHeader header, out ReadOnlySequence<byte> data)
    {
        header = default;
        data = default;
        if (!PayloadMessageCodec.TryReadEnvelope(envelope, EnvelopeField, out var message))
        {
            return false;
        }

        Read(message, out header, out data);
        return true;
    }

    /// <summary>Reads a ReadSegmentReply body; <paramref name="data"/> is a slice of <paramref name="message"/>.</summary>
    public static void Read(in ReadOnlySequence<byte> message, out ReadReplyHeader header, out ReadOnlySequence<byte> data)
    {
        Span<long> fields = stackalloc long[DataField];
        PayloadMessageCodec.Read(message, DataField, fields, out data);
        header = new ReadReplyHeader(fields[1], (ReadStatus)(int)fields[2], fields[3], fields[4], fields[5], fields[6] != 0);
    }

    private static void Fill(in ReadReplyHeader header, Span<long> fields)
    {
        fields[1] = header.RequestId;
        fields[2] = (long)header.Status;
        fields[3] = header.Offset;
        fields[4] = header.SegmentLength;
        fields[5] = header.StartOffset;
        fields[6] = header.Sealed ? 1 : 0;
    }
}
