using System.Buffers;

namespace Streams.SegmentStore.Reading;

/// <summary>Builds a <see cref="ReadOnlySequence{T}"/> over several memory slices without copying them.</summary>
internal sealed class MemoryChunk : ReadOnlySequenceSegment<byte>
{
    public MemoryChunk(ReadOnlyMemory<byte> memory)
    {
        Memory = memory;
    }

    public MemoryChunk Append(ReadOnlyMemory<byte> memory)
    {
        var next = new MemoryChunk(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }

    public static ReadOnlySequence<byte> Sequence(IReadOnlyList<ReadOnlyMemory<byte>> parts)
    {
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        if (parts.Count == 1)
        {
            return new ReadOnlySequence<byte>(parts[0]);
        }

        var first = new MemoryChunk(parts[0]);
        var last = first;
        for (var i = 1; i < parts.Count; i++)
        {
            last = last.Append(parts[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
