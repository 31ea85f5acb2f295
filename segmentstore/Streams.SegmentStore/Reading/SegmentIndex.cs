namespace Streams.SegmentStore.Reading;

/// <summary>Where a contiguous range of a segment's bytes lives: inside a frame of the container's log.</summary>
public readonly record struct IndexEntry(long Offset, int Length, LogAddress Address, int FrameOffset)
{
    public long End => Offset + Length;
}

/// <summary>
/// A segment's read index: contiguous, offset-ordered entries, one per durable append, each pointing into a
/// log frame. Appends only add at the end, so lookups are binary searches over a list.
/// </summary>
public sealed class SegmentIndex
{
    private readonly List<IndexEntry> _entries = [];

    public int Count
    {
        get
        {
            lock (_entries)
            {
                return _entries.Count;
            }
        }
    }

    public void Add(IndexEntry entry)
    {
        lock (_entries)
        {
            if (_entries.Count > 0 && _entries[^1].End != entry.Offset)
            {
                throw new InvalidOperationException($"Index entry at {entry.Offset} does not follow the previous one ending at {_entries[^1].End}.");
            }

            _entries.Add(entry);
        }
    }

    /// <summary>Drops entries that end at or before <paramref name="offset"/>.</summary>
    public void TruncateBefore(long offset)
    {
        lock (_entries)
        {
            var keep = _entries.FindIndex(e => e.End > offset);
            _entries.RemoveRange(0, keep < 0 ? _entries.Count : keep);
        }
    }

    /// <summary>Drops entries in frames before <paramref name="address"/> (the log was truncated there).</summary>
    public void TruncateBeforeAddress(LogAddress address)
    {
        lock (_entries)
        {
            var keep = _entries.FindIndex(e => e.Address >= address);
            _entries.RemoveRange(0, keep < 0 ? _entries.Count : keep);
        }
    }

    /// <summary>The frame address of the first entry holding bytes at or after <paramref name="offset"/>, or null.</summary>
    public LogAddress? AddressAtOrAfter(long offset)
    {
        lock (_entries)
        {
            var i = _entries.FindIndex(e => e.End > offset);
            return i < 0 ? null : _entries[i].Address;
        }
    }

    public void Clear()
    {
        lock (_entries)
        {
            _entries.Clear();
        }
    }

    /// <summary>Copies the entries covering [offset, offset + length) into <paramref name="result"/>.</summary>
    public void Find(long offset, long length, List<IndexEntry> result)
    {
        lock (_entries)
        {
            var lo = 0;
            var hi = _entries.Count - 1;
            var first = -1;
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                if (_entries[mid].Offset <= offset)
                {
                    first = mid;
                    lo = mid + 1;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            if (first < 0)
            {
                return;
            }

            var end = offset + length;
            for (var i = first; i < _entries.Count && _entries[i].Offset < end; i++)
            {
                result.Add(_entries[i]);
            }
        }
    }
}
