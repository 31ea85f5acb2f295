using System.Buffers;

namespace Streams.SegmentStore.Reading;

/// <summary>
/// A cache of reference-counted byte blocks, bounded by <see cref="Capacity"/> bytes and evicted least-recently-used
/// first. Everything in it can be read again from where it came from, so eviction loses nothing. Thread-safe (one lock,
/// held only for dictionary and list updates).
/// </summary>
/// <typeparam name="TKey">What the cache keys on: <see cref="FrameKey"/> for log frames, <see cref="ChunkKey"/> for Tier 2 chunks.</typeparam>
public abstract class BlockCache<TKey>
    where TKey : struct, IEquatable<TKey>
{
    private readonly Dictionary<TKey, Entry> _entries = [];
    private readonly LinkedList<TKey> _lru = new();
    private readonly object _sync = new();
    private long _size;

    protected BlockCache(long capacity)
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
                return _entries.Count;
            }
        }
    }

    /// <summary>Returns the block with one reference taken (release it), or null if it is not cached.</summary>
    public CachedFrame? TryAcquire(TKey key)
    {
        lock (_sync)
        {
            if (!_entries.TryGetValue(key, out var entry) || !entry.Frame.TryAcquire())
            {
                return null;
            }

            Touch(entry.Node);
            return entry.Frame;
        }
    }

    /// <summary>
    /// Adds a block (the cache takes ownership of <paramref name="owner"/>) and returns it with one reference taken for
    /// the caller. If the block is already cached, <paramref name="owner"/> is disposed and the cached copy is returned.
    /// </summary>
    public CachedFrame AddAndAcquire(TKey key, IMemoryOwner<byte> owner, int length) => Add(key, owner, length, acquire: true);

    /// <summary>Adds a block; the cache takes ownership of <paramref name="owner"/>.</summary>
    public void Add(TKey key, IMemoryOwner<byte> owner, int length) => Add(key, owner, length, acquire: false);

    /// <summary>Evicts every block whose key matches (not on a hot path: it visits every entry).</summary>
    protected void RemoveWhere<TState>(TState state, Func<TKey, TState, bool> match)
    {
        lock (_sync)
        {
            List<TKey>? matched = null;
            foreach (var key in _entries.Keys)
            {
                if (match(key, state))
                {
                    (matched ??= []).Add(key);
                }
            }

            foreach (var key in matched ?? [])
            {
                Evict(key);
            }
        }
    }

    private CachedFrame Add(TKey key, IMemoryOwner<byte> owner, int length, bool acquire)
    {
        lock (_sync)
        {
            if (_entries.TryGetValue(key, out var existing) && existing.Frame.TryAcquire())
            {
                owner.Dispose();
                Touch(existing.Node);
                if (!acquire)
                {
                    existing.Frame.Release();
                }

                return existing.Frame;
            }

            var frame = new CachedFrame(owner, length);
            _entries[key] = new Entry(frame, _lru.AddLast(key));
            _size += length;
            if (acquire)
            {
                frame.TryAcquire();
            }

            while (_size > Capacity && _lru.First is { } oldest && !oldest.Value.Equals(key))
            {
                Evict(oldest.Value);
            }

            return frame;
        }
    }

    private void Touch(LinkedListNode<TKey> node)
    {
        _lru.Remove(node);
        _lru.AddLast(node);
    }

    private void Evict(TKey key)
    {
        if (_entries.Remove(key, out var entry))
        {
            _lru.Remove(entry.Node);
            _size -= entry.Frame.Length;
            entry.Frame.Release();
        }
    }

    private readonly record struct Entry(CachedFrame Frame, LinkedListNode<TKey> Node);
}
