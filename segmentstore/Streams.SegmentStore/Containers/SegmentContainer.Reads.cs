using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

internal sealed partial class SegmentContainer
{
    /// <summary>
    /// Reads durable bytes of a segment. At the tail, waits up to <paramref name="wait"/> for new data.
    /// The result may hold cached frames: dispose it once its data is sent.
    /// </summary>
    public async ValueTask<SegmentRead> ReadAsync(string name, long offset, int maxBytes, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        var segment = FindDurable(name);
        if (segment is null)
        {
            return SegmentRead.Failed(OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {name} does not exist."));
        }

        if (maxBytes <= 0 || maxBytes > _options.MaxReadBytes)
        {
            maxBytes = _options.MaxReadBytes;
        }

        var deadline = wait > TimeSpan.Zero ? DateTime.UtcNow + wait : DateTime.MinValue;
        while (true)
        {
            // Register for changes before looking, so a change between the look and the wait is not missed.
            var changed = segment.WhenChanged();
            var length = segment.Length;
            var start = segment.StartOffset;
            var isSealed = segment.IsSealed;
            if (segment.IsDeleted)
            {
                return SegmentRead.Failed(OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {name} was deleted."));
            }

            if (offset < start)
            {
                return new SegmentRead(ReadStatus.Truncated, offset, length, start, isSealed);
            }

            if (offset > length)
            {
                return SegmentRead.Failed(OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                    $"Offset {offset} is beyond the end of segment {name} (length {length}).", length));
            }

            if (offset < length)
            {
                return await ReadDataAsync(segment, offset, (int)Math.Min(maxBytes, length - offset), length, start, isSealed, cancellationToken);
            }

            if (isSealed)
            {
                return new SegmentRead(ReadStatus.EndOfSegment, offset, length, start, isSealed);
            }

            if (Unavailable() is { } unavailable)
            {
                return SegmentRead.Failed(unavailable);
            }

            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                return new SegmentRead(ReadStatus.AtTail, offset, length, start, isSealed);
            }

            try
            {
                await changed.WaitAsync(remaining, cancellationToken);
            }
            catch (TimeoutException)
            {
                // Loop once more: answers AT_TAIL unless data arrived at the last moment.
            }
        }
    }

    private async ValueTask<SegmentRead> ReadDataAsync(SegmentMetadata segment, long offset, int count, long length, long start, bool isSealed, CancellationToken cancellationToken)
    {
        var entries = new List<IndexEntry>();
        segment.Index.Find(offset, count, entries);
        if (entries.Count == 0 || entries[0].Offset > offset)
        {
            // Truncated between the length check and the lookup.
            return new SegmentRead(ReadStatus.Truncated, offset, segment.Length, segment.StartOffset, segment.IsSealed);
        }

        var result = new SegmentRead(ReadStatus.Ok, offset, length, start, isSealed);
        var leases = new List<CachedFrame>(entries.Count);
        var parts = new List<ReadOnlyMemory<byte>>(entries.Count);
        try
        {
            var position = offset;
            long remaining = count;
            foreach (var entry in entries)
            {
                var key = new FrameKey(Id, entry.Address);
                var frame = _cache.TryAcquire(key) ?? await LoadFrameAsync(key, cancellationToken);
                leases.Add(frame);
                var skip = position - entry.Offset;
                var take = (int)Math.Min(entry.Length - skip, remaining);
                parts.Add(frame.Memory.Slice(entry.FrameOffset + (int)skip, take));
                position += take;
                remaining -= take;
                if (remaining == 0)
                {
                    break;
                }
            }

            result.SetData(MemoryChunk.Sequence(parts), leases);
            SegmentStoreMetrics.ReadBytes.Add(count - remaining);
            return result;
        }
        catch
        {
            foreach (var lease in leases)
            {
                lease.Release();
            }

            throw;
        }
    }

    /// <summary>Reads a frame back from the log into the cache (a cache miss). Corrupt frames are never served.</summary>
    private async ValueTask<CachedFrame> LoadFrameAsync(FrameKey key, CancellationToken cancellationToken)
    {
        SegmentStoreMetrics.CacheMisses.Add(1);
        var record = await _log.ReadAsync(key.Address, cancellationToken);
        try
        {
            Logs.DataFrame.Verify(record.Memory.Span, $"container {Id} log address {key.Address}");
        }
        catch
        {
            record.Dispose();
            throw;
        }

        return _cache.AddAndAcquire(key, record.Data, record.Length);
    }
}
