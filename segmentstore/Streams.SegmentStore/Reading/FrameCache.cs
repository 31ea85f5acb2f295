using System.Buffers;

namespace Streams.SegmentStore.Reading;

/// <summary>Identifies a frame across the segment store: containers have separate logs and address spaces.</summary>
public readonly record struct FrameKey(int ContainerId, LogAddress Address);

/// <summary>
/// A durable frame's bytes held in memory. Reference-counted: the cache holds one reference and every reader
/// that is sending bytes from it holds another, so eviction never frees memory that is still being sent.
/// </summary>
public sealed class CachedFrame
{
    private readonly IMemoryOwner<byte> _owner;
    private int _references = 1;

    public CachedFrame(FrameKey key, IMemoryOwner<byte> owner, int length)
    {
        Key = key;
        _owner = owner;
        Length = length;
    }

    public FrameKey Key { get; }

    public int Length { get; }

    public ReadOnlyMemory<byte> Memory => _owner.Memory[..Length];

    internal LinkedListNode<CachedFrame>? Node { get; set; }

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

/// <summary>
/// The segment store's read cache: recently written or read frames, bounded by <see cref="Capacity"/> bytes
/// and evicted least-recently-used first. Every frame in it is durable, so eviction loses nothing: a read that
/// misses loads the frame again from the container's log. One cache serves all containers.
/// </summary>
public sealed class FrameCache
{
    private readonly Dictionary<FrameKey, CachedFrame> _frames = [];
    private readonly LinkedList<CachedFrame> _lru = new();
    private readonly object _sync = new();
    private long _size;

    public FrameCache(long capacity)
    {
        Capacity = capacity;
    }

    public long Capacity { get; }

    public long Size => Interlocked.Read(ref _size);

    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _frames.Count;
            }
        }
    }

    /// <summary>Returns the frame with one reference taken (release it), or null if it is not cached.</summary>
    public CachedFrame? TryAcquire(FrameKey key)
    {
        lock (_sync)
        {
            if (!_frames.TryGetValue(key, out var frame) || !frame.TryAcquire())
            {
                return null;
            }

            _lru.Remove(frame.Node!);
            _lru.AddLast(frame.Node!);
            return frame;
        }
    }

    /// <summary>
    /// Adds a frame (the cache takes ownership of <paramref name="owner"/>) and returns it with one reference
    /// taken for the caller. If the frame is already cached, <paramref name="owner"/> is disposed and the cached
    /// copy is returned.
    /// </summary>
    public CachedFrame AddAndAcquire(FrameKey key, IMemoryOwner<byte> owner, int length)
    {
        var frame = Add(key, owner, length, acquire: true);
        return frame!;
    }

    /// <summary>Adds a frame; the cache takes ownership of <paramref name="owner"/>.</summary>
    public void Add(FrameKey key, IMemoryOwner<byte> owner, int length) => Add(key, owner, length, acquire: false);

    /// <summary>Drops every frame of a container (its log was closed).</summary>
    public void RemoveContainer(int containerId)
    {
        lock (_sync)
        {
            foreach (var frame in _frames.Values.Where(f => f.Key.ContainerId == containerId).ToList())
            {
                Evict(frame);
            }
        }
    }

    /// <summary>Drops a container's frames before <paramref name="address"/>: its log was truncated there, their data is in Tier 2.</summary>
    public void RemoveBefore(int containerId, LogAddress address)
    {
        lock (_sync)
        {
            foreach (var frame in _frames.Values.Where(f => f.Key.ContainerId == containerId && f.Key.Address < address).ToList())
            {
                Evict(frame);
            }
        }
    }

    private CachedFrame? Add(FrameKey key, IMemoryOwner<byte> owner, int length, bool acquire)
    {
        CachedFrame result;
        lock (_sync)
        {
            if (_frames.TryGetValue(key, out var existing) && existing.TryAcquire())
            {
                owner.Dispose();
                _lru.Remove(existing.Node!);
                _lru.AddLast(existing.Node!);
                if (!acquire)
                {
                    existing.Release();
                }

                return existing;
            }

            result = new CachedFrame(key, owner, length);
            result.Node = _lru.AddLast(result);
            _frames[key] = result;
            _size += length;
            if (acquire)
            {
                result.TryAcquire();
            }

            while (_size > Capacity && _lru.First is { } oldest && oldest.Value != result)
            {
                Evict(oldest.Value);
            }
        }

        return result;
    }

    private void Evict(CachedFrame frame)
    {
        _frames.Remove(frame.Key);
        _lru.Remove(frame.Node!);
        frame.Node = null;
        _size -= frame.Length;
        frame.Release();
    }
}
