using System.Buffers;
using Streams.Common.Wire;

namespace Streams.Client.Internal;

/// <summary>A read answer with its data in memory the reply owns; dispose it when the data is consumed.</summary>
internal sealed class SegmentReadReply(ReadReplyHeader header, IMemoryOwner<byte>? owner, ReadOnlyMemory<byte> data) : IDisposable
{
    public ReadReplyHeader Header { get; } = header;

    public ReadOnlyMemory<byte> Data { get; } = data;

    public void Dispose() => owner?.Dispose();

    /// <summary>Copies <paramref name="data"/> into pooled memory.</summary>
    public static SegmentReadReply Copy(ReadReplyHeader header, in ReadOnlySequence<byte> data)
    {
        if (data.IsEmpty)
        {
            return new SegmentReadReply(header, null, ReadOnlyMemory<byte>.Empty);
        }

        var owner = MemoryPool<byte>.Shared.Rent((int)data.Length);
        data.CopyTo(owner.Memory.Span);
        return new SegmentReadReply(header, owner, owner.Memory[..(int)data.Length]);
    }
}
