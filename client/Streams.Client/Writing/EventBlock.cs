using System.Buffers;
using Streams.Client.Internal;

namespace Streams.Client.Writing;

/// <summary>
/// A block of framed events for one segment; all of them complete together.
/// <para>
/// Besides the framed bytes, a block remembers where each event starts, its routing-key point and its application
/// sequence, in one pooled array (no allocation per event). That is what lets a writer cut events the store already
/// holds out of a block, and hand the events of a sealed segment to its successors one by one. It also keeps one
/// routing-key point picked at random weighted by event size (reservoir sampling), sent as the block's key sample.
/// </para>
/// </summary>
internal sealed class EventBlock(int capacity)
{
    private EventMeta[] _events = ArrayPool<EventMeta>.Shared.Rent(16);
    private long _keyedBytes;

    public PooledBuffer Buffer { get; private set; } = new(capacity);

    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TimeSpan OpenedAt { get; } = TimeSpan.FromTicks(Environment.TickCount64 * TimeSpan.TicksPerMillisecond);

    public int EventCount { get; private set; }

    public long LastEventNumber { get; set; }

    public int Bytes => Buffer.WrittenCount;

    public ReadOnlySequence<byte> Data => new(Buffer.WrittenMemory);

    /// <summary>The key-space point of the sampled event, or NaN when no event of the block has a routing key.</summary>
    public double SamplePoint { get; private set; } = double.NaN;

    /// <summary>The event at <paramref name="index"/>: where it starts, its point and sequence.</summary>
    public ref readonly EventMeta this[int index] => ref _events[index];

    /// <summary>The framed bytes of event <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> FrameOf(int index)
    {
        var start = _events[index].Start;
        var end = index + 1 < EventCount ? _events[index + 1].Start : Bytes;
        return Buffer.WrittenSpan[start..end];
    }

    /// <summary>Copies one framed event in and records it (the caller numbers the block).</summary>
    public void Add(ReadOnlySpan<byte> frame, double point, bool hasKey, long sequence)
    {
        frame.CopyTo(Buffer.GetSpan(frame.Length));
        Record(frame.Length, point, hasKey, sequence);
    }

    /// <summary>Records an event the caller framed straight into <see cref="Buffer"/> (not yet advanced).</summary>
    public void Record(int size, double point, bool hasKey, long sequence)
    {
        if (EventCount == _events.Length)
        {
            var grown = ArrayPool<EventMeta>.Shared.Rent(_events.Length * 2);
            _events.AsSpan(0, EventCount).CopyTo(grown);
            ArrayPool<EventMeta>.Shared.Return(_events);
            _events = grown;
        }

        _events[EventCount++] = new EventMeta(Bytes, point, hasKey, sequence);
        Buffer.Advance(size);
        if (hasKey)
        {
            Sample(point, size);
        }
    }

    /// <summary>
    /// Drops the events <paramref name="drop"/> selects, keeping the others in order; returns the bytes dropped.
    /// The last event number becomes the last kept event's sequence (callers use it for application-numbered blocks).
    /// </summary>
    public int RemoveWhere(Func<EventMeta, bool> drop)
    {
        var rest = new PooledBuffer(Bytes);
        var kept = 0;
        var before = Bytes;
        _keyedBytes = 0;
        SamplePoint = double.NaN;
        for (var i = 0; i < EventCount; i++)
        {
            var meta = _events[i];
            if (drop(meta))
            {
                continue;
            }

            var frame = FrameOf(i);
            _events[kept++] = meta with { Start = rest.WrittenCount };
            frame.CopyTo(rest.GetSpan(frame.Length));
            rest.Advance(frame.Length);
            if (meta.HasKey)
            {
                Sample(meta.Point, frame.Length);
            }
        }

        Buffer.Dispose();
        Buffer = rest;
        EventCount = kept;
        if (kept > 0)
        {
            LastEventNumber = _events[kept - 1].Sequence;
        }

        return before - rest.WrittenCount;
    }

    /// <summary>
    /// The block's key sample relative to the segment's range [<paramref name="start"/>, <paramref name="end"/>):
    /// 1 + floor(fraction × 2^32), or 0 when no event has a routing key (segmentstore.proto, AppendBlock.key_sample).
    /// </summary>
    public ulong KeySample(double start, double end)
    {
        if (double.IsNaN(SamplePoint) || end <= start)
        {
            return 0;
        }

        var fraction = Math.Clamp((SamplePoint - start) / (end - start), 0, 1);
        return 1 + Math.Min((ulong)(fraction * 4294967296.0), uint.MaxValue);
    }

    /// <summary>Returns the block's buffers to their pools; the block is not used after this.</summary>
    public void Release()
    {
        Buffer.Dispose();
        var events = Interlocked.Exchange(ref _events, []);
        if (events.Length > 0)
        {
            ArrayPool<EventMeta>.Shared.Return(events);
        }
    }

    /// <summary>Reservoir sampling weighted by size: the new event replaces the sample with probability size / total.</summary>
    private void Sample(double point, int size)
    {
        _keyedBytes += size;
        if (Random.Shared.NextInt64(_keyedBytes) < size)
        {
            SamplePoint = point;
        }
    }
}

/// <summary>
/// One event of a block: its offset in the block, the routing-key point that placed it (random for an event without a
/// key, so that it still has a place in the key space), whether it had a key, and its application sequence (-1 if
/// the writer numbers its events).
/// </summary>
internal readonly record struct EventMeta(int Start, double Point, bool HasKey, long Sequence);
