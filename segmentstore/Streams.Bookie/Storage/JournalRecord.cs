using System.Buffers;
using System.Buffers.Binary;
using Streams.Common.Hashing;

namespace Streams.Bookie.Storage;

internal enum JournalRecordType : byte
{
    Entry = 1,
    Fence = 2,
    Delete = 3,
}

/// <summary>
/// A journal record:
/// <code>
/// type u8 | ledger i64 | entry i64 | lac i64 | payloadCrc u32 | headerCrc u32 | payload
/// </code>
/// little-endian; headerCrc is the CRC-32C of the 29 bytes before it, payloadCrc the CRC-32C of the payload as the
/// writer computed it. A record whose header fails is skipped on recovery (the entry is then read from another
/// replica); an entry whose payload fails is never served (status CORRUPT).
/// </summary>
internal readonly record struct JournalRecord(JournalRecordType Type, long Ledger, long Entry, long LastAddConfirmed, uint PayloadCrc, ReadOnlyMemory<byte> Payload)
{
    public const int HeaderSize = 33;

    private const int CheckedHeaderSize = 29;

    public static int SizeOf(long payloadLength) => HeaderSize + (int)payloadLength;

    /// <summary>Writes a record into <paramref name="destination"/> (of <see cref="SizeOf"/> bytes).</summary>
    public static void Write(Span<byte> destination, JournalRecordType type, long ledger, long entry, long lac, uint payloadCrc, in ReadOnlySequence<byte> payload)
    {
        destination[0] = (byte)type;
        BinaryPrimitives.WriteInt64LittleEndian(destination[1..], ledger);
        BinaryPrimitives.WriteInt64LittleEndian(destination[9..], entry);
        BinaryPrimitives.WriteInt64LittleEndian(destination[17..], lac);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[25..], payloadCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[29..], Crc32C.Compute(destination[..CheckedHeaderSize]));
        payload.CopyTo(destination[HeaderSize..]);
    }

    /// <summary>Parses a record; false if it is too short or its header fails its checksum.</summary>
    public static bool TryParse(ReadOnlyMemory<byte> bytes, out JournalRecord record)
    {
        record = default;
        var span = bytes.Span;
        if (span.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(span[29..]) != Crc32C.Compute(span[..CheckedHeaderSize]))
        {
            return false;
        }

        record = new JournalRecord(
            (JournalRecordType)span[0],
            BinaryPrimitives.ReadInt64LittleEndian(span[1..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[9..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[17..]),
            BinaryPrimitives.ReadUInt32LittleEndian(span[25..]),
            bytes[HeaderSize..]);
        return true;
    }

    /// <summary>True if the payload still matches the checksum its writer computed.</summary>
    public bool PayloadIntact => Crc32C.Compute(Payload.Span) == PayloadCrc;
}
