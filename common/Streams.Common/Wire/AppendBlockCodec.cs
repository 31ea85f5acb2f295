using System.Buffers;

namespace Streams.Common.Wire;

/// <summary>
/// The header fields of an AppendBlock (segmentstore.proto). <see cref="KeySample"/> is 0 or 1 + the position of one
/// event's routing key in the segment's key range, scaled to 2^32.
/// </summary>
public readonly record struct AppendBlockHeader(long RequestId, long LastEventNumber, int EventCount, long? ExpectedOffset, ulong KeySample = 0);

/// <summary>
/// An AppendRequest/DataRequest envelope holding one AppendBlock, read and written without copying its data
/// (<see cref="PayloadMessageCodec"/>).
/// </summary>
public static class AppendBlockCodec
{
    /// <summary>AppendBlock's field number in both AppendRequest and DataRequest.</summary>
    public const int EnvelopeField = 2;

    private const int DataField = 5;
    private const int ExpectedOffsetField = 4;
    private const int KeySampleField = 6;

    /// <summary>
    /// Reads <paramref name="envelope"/> if it consists of exactly one AppendBlock field. Returns false for any
    /// other message (parse it with Google.Protobuf); throws <see cref="InvalidDataException"/> for a malformed block.
    /// </summary>
    public static bool TryReadEnvelope(in ReadOnlySequence<byte> envelope, out AppendBlockHeader header, out ReadOnlySequence<byte> data)
    {
        header = default;
        data = default;
        if (!PayloadMessageCodec.TryReadEnvelope(envelope, EnvelopeField, out var block))
        {
            return false;
        }

        Read(block, out header, out data);
        return true;
    }

    /// <summary>Reads the body of an AppendBlock message.</summary>
    public static void Read(in ReadOnlySequence<byte> block, out AppendBlockHeader header, out ReadOnlySequence<byte> data)
    {
        Span<long> fields = stackalloc long[KeySampleField + 1];
        var present = PayloadMessageCodec.Read(block, DataField, fields, out data);
        header = new AppendBlockHeader(fields[1], fields[2], (int)fields[3], (present & (1UL << ExpectedOffsetField)) != 0 ? fields[4] : null, (ulong)fields[KeySampleField]);
    }

    /// <summary>Size of the envelope (AppendRequest or DataRequest) holding the block.</summary>
    public static int EnvelopeSize(in AppendBlockHeader header, long dataLength)
    {
        Span<long> fields = stackalloc long[KeySampleField + 1];
        return PayloadMessageCodec.EnvelopeSize(EnvelopeField, fields, Fill(header, fields), DataField, dataLength);
    }

    /// <summary>Writes the envelope holding the block.</summary>
    public static void WriteEnvelope(IBufferWriter<byte> writer, in AppendBlockHeader header, in ReadOnlySequence<byte> data)
    {
        Span<long> fields = stackalloc long[KeySampleField + 1];
        PayloadMessageCodec.WriteEnvelope(writer, EnvelopeField, fields, Fill(header, fields), DataField, data);
    }

    private static ulong Fill(in AppendBlockHeader header, Span<long> fields)
    {
        fields[1] = header.RequestId;
        fields[2] = header.LastEventNumber;
        fields[3] = header.EventCount;
        fields[4] = header.ExpectedOffset ?? 0;
        fields[KeySampleField] = (long)header.KeySample;
        return header.ExpectedOffset.HasValue ? 1UL << ExpectedOffsetField : 0;
    }
}
