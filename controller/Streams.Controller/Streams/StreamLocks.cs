namespace Streams.Controller.Streams;

/// <summary>
/// One asynchronous lock per stream name, kept only while someone holds or waits for it: the last one out removes
/// it, so a controller that has seen many streams over its life keeps no lock for any of them.
/// </summary>
internal sealed class StreamLocks
{
    private readonly object _lock = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>Locks currently kept (held or waited for).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Waits for the lock of <paramref name="key"/>; dispose the result to release it.</summary>
    public async Task<IDisposable> LockAsync(string key, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out entry!))
            {
                entry = new Entry(key);
                _entries[key] = entry;
            }

            entry.Users++;
        }

        try
        {
            await entry.Gate.WaitAsync(cancellationToken);
        }
        catch
        {
            Leave(entry);
            throw;
        }

        return new Holder(this, entry);
    }

    private void Leave(Entry entry)
    {
        lock (_lock)
        {
            if (--entry.Users == 0)
            {
                _entries.Remove(entry.Key);
            }
        }
    }

    private sealed class Entry(string key)
    {
        public string Key { get; } = key;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        /// <summary>Holders and waiters (under the table's lock).</summary>
        public int Users { get; set; }
    }

    private sealed class Holder(StreamLocks locks, Entry entry) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                entry.Gate.Release();
                locks.Leave(entry);
            }
        }
    }
}
