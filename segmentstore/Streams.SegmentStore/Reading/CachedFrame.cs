using System.Buffers;

namespace Streams.SegmentStore.Reading;

/// <summary>
/// Bytes held in a cache (a durable log frame, or a chunk read back from Tier 2). Reference-counted: the cache holds one
/// reference and every reader that is sending bytes from it holds another, so eviction never frees memory that is still
/// being sent.
/// </summary>
public sealed class CachedFrame
{
    private readonly IMemoryOwner<byte> _owner;
    private int _references = 1;

    public CachedFrame(IMemoryOwner<byte> owner, int length)
    {
        _owner = owner;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlyMemory<byte> Memory => _owner.Memory[..Length];

    public bool TryAcquire()
    {
        var current = Volatile.Read(ref _references);
        while (current > 0)
        {
            var seen = Interlocked.CompareExchange(ref _references, current + 1, current);
            if (seen == current)
            {
                return true;
            }

            current = seen;
        }

        return false;
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _owner.Dispose();
        }
    }
}
