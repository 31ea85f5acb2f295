using System.Buffers;
using Streams.Common.Server.Framing;
using Streams.Common.Wire;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>Field numbers of the payload-carrying bookie messages, read and written without copying payloads.</summary>
internal static class BookieProtocol
{
    public const int ProtocolVersion = 1;

    /// <summary>AddEntryRequest in BookieRequest; ReadEntryReply in BookieReply.</summary>
    public const int AddEnvelopeField = 1;
    public const int ReadReplyEnvelopeField = 2;
    public const int PayloadField = 7;

    /// <summary>The fields of an AddEntryRequest.</summary>
    public readonly record struct AddHeader(long RequestId, long Ledger, long Entry, long LastAddConfirmed, uint Crc, bool Recovery);

    /// <summary>Reads a BookieRequest holding only an AddEntryRequest; the payload is a slice of the frame.</summary>
    public static bool TryReadAdd(in ReadOnlySequence<byte> frame, out AddHeader header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (!PayloadMessageCodec.TryReadEnvelope(frame, AddEnvelopeField, out var message))
        {
            return false;
        }

        Span<long> fields = stackalloc long[PayloadField];
        PayloadMessageCodec.Read(message, PayloadField, fields, out payload);
        header = new AddHeader(fields[1], fields[2], fields[3], fields[4], (uint)fields[5], fields[6] != 0);
        return true;
    }

    /// <summary>Writes a BookieRequest holding an AddEntryRequest whose payload comes from the caller's buffer.</summary>
    public static int AddSize(in AddHeader header, long payloadLength)
    {
        Span<long> fields = stackalloc long[PayloadField];
        Fill(header, fields);
        return PayloadMessageCodec.EnvelopeSize(AddEnvelopeField, fields, 0, PayloadField, payloadLength);
    }

    public static void WriteAdd(IBufferWriter<byte> writer, in AddHeader header, in ReadOnlySequence<byte> payload)
    {
        Span<long> fields = stackalloc long[PayloadField];
        Fill(header, fields);
        PayloadMessageCodec.WriteEnvelope(writer, AddEnvelopeField, fields, 0, PayloadField, payload);
    }

    /// <summary>Reads a BookieReply holding a ReadEntryReply; false for any other reply.</summary>
    public static bool TryReadEntryReply(in ReadOnlySequence<byte> frame, out long requestId, out BookieStatus status, out long lastAddConfirmed, out uint crc, out ReadOnlySequence<byte> payload)
    {
        requestId = lastAddConfirmed = 0;
        status = BookieStatus.Unspecified;
        crc = 0;
        payload = default;
        if (!PayloadMessageCodec.TryReadEnvelope(frame, ReadReplyEnvelopeField, out var message))
        {
            return false;
        }

        Span<long> fields = stackalloc long[PayloadField];
        PayloadMessageCodec.Read(message, PayloadField, fields, out payload);
        (requestId, status, lastAddConfirmed, crc) = (fields[1], (BookieStatus)(int)fields[4], fields[5], (uint)fields[6]);
        return true;
    }

    private static void Fill(in AddHeader header, Span<long> fields)
    {
        fields[1] = header.RequestId;
        fields[2] = header.Ledger;
        fields[3] = header.Entry;
        fields[4] = header.LastAddConfirmed;
        fields[5] = header.Crc;
        fields[6] = header.Recovery ? 1 : 0;
    }

    /// <summary>A ReadEntryReply frame body written straight from the journal's read buffer.</summary>
    public sealed class EntryReplyBody(long requestId, long ledger, long entry, EntryRead read) : IFrameBody
    {
        public int Size
        {
            get
            {
                Span<long> fields = stackalloc long[PayloadField];
                Fill(fields);
                return PayloadMessageCodec.EnvelopeSize(ReadReplyEnvelopeField, fields, 0, PayloadField, read.Payload.Length);
            }
        }

        public void Write(IBufferWriter<byte> writer)
        {
            Span<long> fields = stackalloc long[PayloadField];
            Fill(fields);
            PayloadMessageCodec.WriteEnvelope(writer, ReadReplyEnvelopeField, fields, 0, PayloadField, new ReadOnlySequence<byte>(read.Payload));
        }

        public void Dispose() => read.Dispose();

        private void Fill(Span<long> fields)
        {
            fields[1] = requestId;
            fields[2] = ledger;
            fields[3] = entry;
            fields[4] = (long)read.Status;
            fields[5] = read.LastAddConfirmed;
            fields[6] = read.Crc;
        }
    }
}
