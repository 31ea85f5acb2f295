using System.Buffers.Binary;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A checkpoint is written as pages, one <see cref="OperationType.CheckpointPage"/> operation per log frame, so its size
/// is bounded only by memory, never by the largest log record. Page bodies: <c>checkpoint id i64 | index i32 | count
/// i32 | bytes</c>. The pages of one checkpoint are consecutive frames (they are queued in one critical section), so a
/// replay that meets any other operation between them knows the checkpoint was cut short by a crash and ignores it.
/// </summary>
internal static class CheckpointPages
{
    public const int HeaderSize = 16;

    /// <summary>Writes a page body's header.</summary>
    public static void WriteHeader(Span<byte> body, long checkpointId, int index, int count)
    {
        BinaryPrimitives.WriteInt64LittleEndian(body, checkpointId);
        BinaryPrimitives.WriteInt32LittleEndian(body[8..], index);
        BinaryPrimitives.WriteInt32LittleEndian(body[12..], count);
    }

    public static (long CheckpointId, int Index, int Count) ReadHeader(ReadOnlySpan<byte> body, string where)
    {
        if (body.Length < HeaderSize)
        {
            throw new DataCorruptionException($"{where}: a checkpoint page of {body.Length} bytes has no header.");
        }

        var (id, index, count) = (BinaryPrimitives.ReadInt64LittleEndian(body), BinaryPrimitives.ReadInt32LittleEndian(body[8..]), BinaryPrimitives.ReadInt32LittleEndian(body[12..]));
        if (count < 1 || index < 0 || index >= count)
        {
            throw new DataCorruptionException($"{where}: checkpoint page {index} of {count} is malformed.");
        }

        return (id, index, count);
    }
}

/// <summary>A write-only stream that fills fixed-size pages, so a large checkpoint is never one contiguous array.</summary>
internal sealed class PagedBuffer(int pageSize) : Stream
{
    private readonly List<byte[]> _full = [];
    private byte[] _page = new byte[pageSize];
    private int _used;

    /// <summary>The pages written so far; the last one may be partly filled.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Pages => [.. _full.Select(p => (ReadOnlyMemory<byte>)p), .. _used > 0 || _full.Count == 0 ? [_page.AsMemory(0, _used)] : Array.Empty<ReadOnlyMemory<byte>>()];

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => ((long)_full.Count * pageSize) + _used;

    public override long Position
    {
        get => Length;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            if (_used == _page.Length)
            {
                _full.Add(_page);
                _page = new byte[pageSize];
                _used = 0;
            }

            var n = Math.Min(buffer.Length, _page.Length - _used);
            buffer[..n].CopyTo(_page.AsSpan(_used));
            _used += n;
            buffer = buffer[n..];
        }
    }

    public override void WriteByte(byte value) => Write(new ReadOnlySpan<byte>(in value));

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>A read-only stream over the data of a checkpoint's pages, in order, without joining them.</summary>
internal sealed class PagesStream(IReadOnlyList<ReadOnlyMemory<byte>> pages) : Stream
{
    private int _page;
    private int _offset;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => pages.Sum(p => (long)p.Length);

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int ReadByte()
    {
        byte value = 0;
        return Read(new Span<byte>(ref value)) == 1 ? value : -1;
    }

    public override int Read(Span<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length && _page < pages.Count)
        {
            var rest = pages[_page].Span[_offset..];
            var n = Math.Min(rest.Length, buffer.Length - read);
            rest[..n].CopyTo(buffer[read..]);
            read += n;
            _offset += n;
            if (_offset == pages[_page].Length)
            {
                _page++;
                _offset = 0;
            }
        }

        return read;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
