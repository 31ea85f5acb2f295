using System.Buffers.Binary;
using System.Text;
using Streams.Common.Hashing;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// The log record format of a segment container: a frame of operations.
/// <code>
/// frame  := header operation* crc32c
/// header := magic u32 "STRF" | version u8 | reserved u8[3] | sequence i64 | count i32 | bodyLength i32   (24 bytes)
/// operation := type u8 | length u32 | body[length]
/// crc32c := CRC-32C (Castagnoli) of header and body, u32
/// </code>
/// All integers little-endian. Operation bodies:
/// <list type="bullet">
/// <item>CreateSegment: segmentId i64 | createdAtUnixMs i64 | nameLength u16 | name (UTF-8) | optional load seed
/// (<see cref="WriterAndLoadRecords"/>; at DataOffset, DataLength)</item>
/// <item>Append: segmentId i64 | offset i64 | writerId (16 bytes) | lastEventNumber i64 | data</item>
/// <item>Seal: segmentId i64 | length i64</item>
/// <item>Truncate: segmentId i64 | startOffset i64</item>
/// <item>Delete: segmentId i64</item>
/// <item>InheritWriters: see <see cref="WriterAndLoadRecords"/> (the whole body at DataOffset, DataLength)</item>
/// </list>
/// An unknown operation type is skipped by its length, so newer writers can add types.
/// </summary>
internal static class DataFrame
{
    public const uint Magic = 0x46525453; // "STRF" read as little-endian bytes
    public const byte Version = 1;
    public const int HeaderSize = 24;
    public const int TrailerSize = 4;
    public const int OperationHeaderSize = 5;
    public const int AppendHeaderSize = 8 + 8 + 16 + 8;

    /// <summary>Frame bytes an append needs besides its data.</summary>
    public static int AppendOverhead => OperationHeaderSize + AppendHeaderSize;

    public static uint Checksum(ReadOnlySpan<byte> data) => Crc32C.Compute(data);

    /// <summary>
    /// Checks a frame's magic, version, length and checksum, and returns its sequence number and operation count.
    /// Throws <see cref="DataCorruptionException"/> if any check fails.
    /// </summary>
    public static (long Sequence, int Count) Verify(ReadOnlySpan<byte> frame, string where)
    {
        if (frame.Length < HeaderSize + TrailerSize)
        {
            throw new DataCorruptionException($"Frame at {where} is {frame.Length} bytes, shorter than a header.");
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(frame) != Magic || frame[4] != Version)
        {
            throw new DataCorruptionException($"Frame at {where} has a bad magic number or version.");
        }

        var bodyLength = BinaryPrimitives.ReadInt32LittleEndian(frame[20..]);
        if (bodyLength < 0 || HeaderSize + bodyLength + TrailerSize != frame.Length)
        {
            throw new DataCorruptionException($"Frame at {where} declares {bodyLength} body bytes but holds {frame.Length - HeaderSize - TrailerSize}.");
        }

        var expected = BinaryPrimitives.ReadUInt32LittleEndian(frame[(HeaderSize + bodyLength)..]);
        var actual = Checksum(frame[..(HeaderSize + bodyLength)]);
        if (expected != actual)
        {
            throw new DataCorruptionException($"Frame at {where} failed its CRC-32C check (stored {expected:x8}, computed {actual:x8}).");
        }

        return (BinaryPrimitives.ReadInt64LittleEndian(frame[8..]), BinaryPrimitives.ReadInt32LittleEndian(frame[16..]));
    }

    /// <summary>Enumerates the operations of a verified frame.</summary>
    public static OperationEnumerator Operations(ReadOnlyMemory<byte> frame) => new(frame);

    /// <summary>One operation of a frame. For appends, the data is at [DataOffset, DataOffset + DataLength) of the frame.</summary>
    internal readonly record struct Operation(
        OperationType Type,
        long SegmentId,
        long Value,
        Guid WriterId,
        long LastEventNumber,
        int DataOffset,
        int DataLength,
        string? Name);

    internal struct OperationEnumerator
    {
        private readonly ReadOnlyMemory<byte> _frame;
        private readonly int _end;
        private int _position;

        public OperationEnumerator(ReadOnlyMemory<byte> frame)
        {
            _frame = frame;
            _end = frame.Length - TrailerSize;
            _position = HeaderSize;
            Current = default;
        }

        public Operation Current { get; private set; }

        public readonly OperationEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            var span = _frame.Span;
            while (_position < _end)
            {
                if (_position + OperationHeaderSize > _end)
                {
                    throw new DataCorruptionException("An operation header crosses the end of its frame.");
                }

                var type = (OperationType)span[_position];
                var length = BinaryPrimitives.ReadInt32LittleEndian(span[(_position + 1)..]);
                var start = _position + OperationHeaderSize;
                if (length < 0 || start + length > _end)
                {
                    throw new DataCorruptionException("An operation crosses the end of its frame.");
                }

                _position = start + length;
                var body = span.Slice(start, length);
                switch (type)
                {
                    case OperationType.CreateSegment:
                        var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(body[16..]);
                        Current = new Operation(type, ReadId(body), BinaryPrimitives.ReadInt64LittleEndian(body[8..]), Guid.Empty, 0,
                            start + 18 + nameLength, length - 18 - nameLength, Encoding.UTF8.GetString(body.Slice(18, nameLength)));
                        return true;
                    case OperationType.Append:
                        Current = new Operation(type, ReadId(body), BinaryPrimitives.ReadInt64LittleEndian(body[8..]),
                            new Guid(body.Slice(16, 16)), BinaryPrimitives.ReadInt64LittleEndian(body[32..]),
                            start + AppendHeaderSize, length - AppendHeaderSize, null);
                        return true;
                    case OperationType.Seal:
                    case OperationType.Truncate:
                        Current = new Operation(type, ReadId(body), BinaryPrimitives.ReadInt64LittleEndian(body[8..]), Guid.Empty, 0, 0, 0, null);
                        return true;
                    case OperationType.Delete:
                        Current = new Operation(type, ReadId(body), 0, Guid.Empty, 0, 0, 0, null);
                        return true;
                    case OperationType.StorageFlushed:
                    case OperationType.InheritWriters:
                        Current = new Operation(type, ReadId(body), 0, Guid.Empty, 0, start, length, null);
                        return true;
                    case OperationType.Checkpoint:
                    case OperationType.CheckpointPage:
                        // The body (at DataOffset, DataLength) is a ContainerCheckpoint, or one page of one.
                        Current = new Operation(type, 0, 0, Guid.Empty, 0, start, length, null);
                        return true;
                    default:
                        continue; // written by a newer version: skip it by its length
                }
            }

            return false;
        }

        private static long ReadId(ReadOnlySpan<byte> body) => BinaryPrimitives.ReadInt64LittleEndian(body);
    }
}
