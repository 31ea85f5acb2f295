using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// Fills one frame (<see cref="DataFrame"/>) in a pooled buffer. Append data is copied in exactly once,
/// straight from the transport's receive buffers; the frame buffer then goes to the durable log and,
/// once durable, into the read cache, without further copies (a short frame is copied once into a buffer of its
/// size, see <see cref="Detach"/>).
/// </summary>
public sealed class DataFrameBuilder : IDisposable
{
    private byte[]? _buffer;
    private int _position = DataFrame.HeaderSize;

    public DataFrameBuilder(int capacity)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(capacity);
        Capacity = capacity;
    }

    public int Capacity { get; }

    public int OperationCount { get; private set; }

    public bool IsEmpty => OperationCount == 0;

    /// <summary>Bytes used so far, including the header and the trailer to come.</summary>
    public int Length => _position + DataFrame.TrailerSize;

    public bool HasRoomFor(int operationBodyLength) =>
        _position + DataFrame.OperationHeaderSize + operationBodyLength + DataFrame.TrailerSize <= Capacity;

    /// <summary>Adds an append; returns the offset of its data within the frame.</summary>
    public int AddAppend(long segmentId, long offset, Guid writerId, long lastEventNumber, in ReadOnlySequence<byte> data)
    {
        var body = Begin(OperationType.Append, DataFrame.AppendHeaderSize + (int)data.Length);
        BinaryPrimitives.WriteInt64LittleEndian(body, segmentId);
        BinaryPrimitives.WriteInt64LittleEndian(body[8..], offset);
        writerId.TryWriteBytes(body.Slice(16, 16));
        BinaryPrimitives.WriteInt64LittleEndian(body[32..], lastEventNumber);
        var dataOffset = _position - (int)data.Length;
        data.CopyTo(body[DataFrame.AppendHeaderSize..]);
        return dataOffset;
    }

    /// <summary>Adds a segment's creation, with its load seed (<paramref name="seed"/>, empty for none).</summary>
    public void AddCreate(long segmentId, long createdAtUnixMs, string name, ReadOnlySpan<byte> seed = default)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var body = Begin(OperationType.CreateSegment, 18 + nameBytes.Length + seed.Length);
        seed.CopyTo(body[(18 + nameBytes.Length)..]);
        BinaryPrimitives.WriteInt64LittleEndian(body, segmentId);
        BinaryPrimitives.WriteInt64LittleEndian(body[8..], createdAtUnixMs);
        BinaryPrimitives.WriteUInt16LittleEndian(body[16..], (ushort)nameBytes.Length);
        nameBytes.CopyTo(body[18..]);
    }

    public void AddSegmentValue(OperationType type, long segmentId, long value)
    {
        var body = Begin(type, 16);
        BinaryPrimitives.WriteInt64LittleEndian(body, segmentId);
        BinaryPrimitives.WriteInt64LittleEndian(body[8..], value);
    }

    /// <summary>Adds an operation whose body is already serialized (storage records, checkpoints).</summary>
    public void AddBody(OperationType type, ReadOnlySpan<byte> body) => body.CopyTo(Begin(type, body.Length));

    /// <summary>Adds one page of a checkpoint (<see cref="CheckpointPages"/>).</summary>
    public void AddCheckpointPage(long checkpointId, int index, int count, ReadOnlySpan<byte> data)
    {
        var body = Begin(OperationType.CheckpointPage, CheckpointPages.HeaderSize + data.Length);
        CheckpointPages.WriteHeader(body, checkpointId, index, count);
        data.CopyTo(body[CheckpointPages.HeaderSize..]);
    }

    public void AddDelete(long segmentId)
    {
        var body = Begin(OperationType.Delete, 8);
        BinaryPrimitives.WriteInt64LittleEndian(body, segmentId);
    }

    /// <summary>The finished frame, once <see cref="Seal"/>ed.</summary>
    public ReadOnlyMemory<byte> Sealed { get; private set; }

    /// <summary>Writes the header and checksum. The builder then owns a finished frame; take it with <see cref="Detach"/>.</summary>
    public ReadOnlyMemory<byte> Seal(long sequence)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(DataFrameBuilder));
        var span = buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, DataFrame.Magic);
        span[4] = DataFrame.Version;
        span[5] = span[6] = span[7] = 0;
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], sequence);
        BinaryPrimitives.WriteInt32LittleEndian(span[16..], OperationCount);
        BinaryPrimitives.WriteInt32LittleEndian(span[20..], _position - DataFrame.HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[_position..], DataFrame.Checksum(span[.._position]));
        Sealed = buffer.AsMemory(0, Length);
        return Sealed;
    }

    /// <summary>
    /// Hands the frame over (to the read cache); the builder is empty afterwards. A frame that fills at most half its
    /// buffer is first copied into a pooled buffer of its own size, and the large one goes back to the pool.
    /// </summary>
    /// <remarks>
    /// The cache counts a frame by its length. With appends from many segments, a frame goes to the log as soon as the
    /// log is ready, often with a few dozen KiB in its 1 MiB buffer: held as it was, a 256 MiB cache pinned several GiB
    /// of frame buffers, every frame rented a fresh 1 MiB array from the large-object heap, and full collections took a
    /// quarter of the time. Copying a short frame once costs far less than that.
    /// </remarks>
    public IMemoryOwner<byte> Detach()
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(DataFrameBuilder));
        _buffer = null;
        var length = Length;
        if (length > buffer.Length / 2)
        {
            return new PooledArray(buffer);
        }

        var fitted = ArrayPool<byte>.Shared.Rent(length);
        buffer.AsSpan(0, length).CopyTo(fitted);
        ArrayPool<byte>.Shared.Return(buffer);
        return new PooledArray(fitted);
    }

    public void Dispose()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Span<byte> Begin(OperationType type, int bodyLength)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(DataFrameBuilder));
        if (!HasRoomFor(bodyLength))
        {
            throw new InvalidOperationException("The frame is full.");
        }

        buffer[_position] = (byte)type;
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(_position + 1), bodyLength);
        var body = buffer.AsSpan(_position + DataFrame.OperationHeaderSize, bodyLength);
        _position += DataFrame.OperationHeaderSize + bodyLength;
        OperationCount++;
        return body;
    }

    /// <summary>An ArrayPool array handed out as a memory owner; disposing returns it.</summary>
    private sealed class PooledArray : IMemoryOwner<byte>
    {
        private byte[]? _array;

        public PooledArray(byte[] array)
        {
            _array = array;
        }

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(PooledArray));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } array)
            {
                ArrayPool<byte>.Shared.Return(array);
            }
        }
    }
}
