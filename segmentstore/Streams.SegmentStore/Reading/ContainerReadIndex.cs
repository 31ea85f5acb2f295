using System.Buffers;
using System.Collections.Concurrent;
using Streams.Common.Hashing;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;
using Streams.Tier2;

namespace Streams.SegmentStore.Reading;

/// <summary>
/// A container's read index (<see cref="IReadIndex"/>).
/// <para>
/// State and lock. This class owns the Tier 2 fetches in flight (a concurrent dictionary, no lock) and its use of the
/// frame and chunk caches (shared by the store's containers, each with its own lock). The segments' index entries live
/// with the segments (each <see cref="SegmentIndex"/> has its own lock); chunk lists are the metadata's, read through it.
/// </para>
/// </summary>
internal sealed class ContainerReadIndex : IReadIndex
{
    private readonly int _containerId;
    private readonly IContainerMetadata _metadata;
    private readonly IOperationLog _log;
    private readonly FrameCache _cache;
    private readonly IChunkStorage? _tier2;
    private readonly ChunkCache? _chunkCache;
    private readonly int _maxReadBytes;
    private readonly ConcurrentDictionary<ChunkKey, Task> _chunkFetches = new(); // Tier 2 reads in flight, by chunk

    /// <param name="containerId">The container's number (the caches' keys carry it).</param>
    /// <param name="metadata">The container's segments.</param>
    /// <param name="log">Where frames missing from the cache are read back.</param>
    /// <param name="cache">The frame cache shared by the store's containers.</param>
    /// <param name="tier2">Long-term storage; null when everything stays in the log.</param>
    /// <param name="chunkCache">The chunk cache shared by the store's containers (used with <paramref name="tier2"/>).</param>
    /// <param name="maxReadBytes">Largest read answer.</param>
    public ContainerReadIndex(int containerId, IContainerMetadata metadata, IOperationLog log, FrameCache cache, IChunkStorage? tier2, ChunkCache? chunkCache, int maxReadBytes)
    {
        _containerId = containerId;
        _metadata = metadata;
        _log = log;
        _cache = cache;
        _tier2 = tier2;
        _chunkCache = chunkCache;
        _maxReadBytes = maxReadBytes;
    }

    public async ValueTask<SegmentRead> ReadAsync(string name, long offset, int maxBytes, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        var segment = _metadata.FindDurable(name);
        if (segment is null)
        {
            return SegmentRead.Failed(OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {name} does not exist."));
        }

        if (maxBytes <= 0 || maxBytes > _maxReadBytes)
        {
            maxBytes = _maxReadBytes;
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
                return await ReadDataAsync(segment, offset, (int)Math.Min(maxBytes, length - offset), length, start, isSealed, fromLogOnly: false, cancellationToken);
            }

            if (isSealed)
            {
                return new SegmentRead(ReadStatus.EndOfSegment, offset, length, start, isSealed);
            }

            if (_log.Unavailable() is { } unavailable)
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

    public ValueTask<SegmentRead> ReadFromLogAsync(SegmentMetadata segment, long offset, int count, long length, long start, CancellationToken cancellationToken = default) =>
        ReadDataAsync(segment, offset, count, length, start, false, fromLogOnly: true, cancellationToken);

    public void OnFrameDurable(LogAddress address, IMemoryOwner<byte> frame, int length) => _cache.Add(new FrameKey(_containerId, address), frame, length);

    public void OnLogTruncated(LogAddress address)
    {
        _metadata.ForEachSegment(address, static (segment, at) => segment.Index.TruncateBeforeAddress(at));
        _cache.RemoveBefore(_containerId, address);
    }

    public void Dispose() => _cache.RemoveContainer(_containerId);

    /// <summary>
    /// Collects up to <paramref name="count"/> bytes from <paramref name="offset"/>: from cached frames, from chunks in
    /// Tier 2 (bytes already there whose frame is not cached, or no longer in the log), else from the log. One
    /// answer may stitch Tier 2 and Tier 1 parts. <paramref name="fromLogOnly"/> is for the storage writer, which reads
    /// what is not in Tier 2 yet.
    /// </summary>
    private async ValueTask<SegmentRead> ReadDataAsync(SegmentMetadata segment, long offset, int count, long length, long start, bool isSealed, bool fromLogOnly, CancellationToken cancellationToken)
    {
        var result = new SegmentRead(ReadStatus.Ok, offset, length, start, isSealed);
        var leases = new List<CachedFrame>(4);
        var parts = new List<ReadOnlyMemory<byte>>(4);
        var found = new List<IndexEntry>(1);
        try
        {
            var position = offset;
            long remaining = count;
            while (remaining > 0)
            {
                found.Clear();
                segment.Index.Find(position, 1, found);
                IndexEntry? entry = found.Count > 0 && found[0].Offset <= position && position < found[0].End ? found[0] : null;
                var frame = entry is { } e ? _cache.TryAcquire(new FrameKey(_containerId, e.Address)) : null;
                if (frame is null && !fromLogOnly && _tier2 is not null && position < segment.DurableStorageLength
                    && _metadata.FindChunk(segment, position) is { Name.Length: > 0 } chunk)
                {
                    var lease = await AcquireChunkAsync(segment.Id, chunk, cancellationToken);
                    leases.Add(lease);
                    var skip = (int)(position - chunk.Start);
                    var fromChunk = (int)Math.Min(chunk.Length - skip, remaining);
                    parts.Add(lease.Memory.Slice(skip, fromChunk));
                    position += fromChunk;
                    remaining -= fromChunk;
                    continue;
                }

                if (entry is not { } at)
                {
                    break;
                }

                if (frame is null)
                {
                    if (at.Address < _log.TruncatedAt)
                    {
                        break; // Left the log meanwhile; the next read finds it in Tier 2.
                    }

                    frame = await LoadFrameAsync(new FrameKey(_containerId, at.Address), cancellationToken);
                }

                leases.Add(frame);
                var within = position - at.Offset;
                var take = (int)Math.Min(at.Length - within, remaining);
                parts.Add(frame.Memory.Slice(at.FrameOffset + (int)within, take));
                position += take;
                remaining -= take;
            }

            if (parts.Count == 0)
            {
                // Truncated between the length check and the lookup.
                foreach (var lease in leases)
                {
                    lease.Release();
                }

                return new SegmentRead(ReadStatus.Truncated, offset, segment.Length, segment.StartOffset, segment.IsSealed);
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
            DataFrame.Verify(record.Memory.Span, $"container {_containerId} log address {key.Address}");
        }
        catch
        {
            record.Dispose();
            throw;
        }

        return _cache.AddAndAcquire(key, record.Data, record.Length);
    }

    /// <summary>
    /// Returns the chunk's bytes with one reference taken (release it), from the chunk cache or Tier 2. Readers that
    /// miss on the same chunk at once share one Tier 2 read: the first fetches, the others wait for it and take the
    /// cached copy (or fetch it themselves if that read failed or the copy was already evicted).
    /// </summary>
    private async ValueTask<CachedFrame> AcquireChunkAsync(long segmentId, ChunkInfo chunk, CancellationToken cancellationToken)
    {
        var key = new ChunkKey(_containerId, segmentId, chunk.Start);
        if (_chunkCache!.TryAcquire(key) is { } cached)
        {
            return cached;
        }

        var fetching = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inFlight = _chunkFetches.GetOrAdd(key, fetching.Task);
        if (inFlight != fetching.Task)
        {
            await inFlight.WaitAsync(cancellationToken);
            return _chunkCache.TryAcquire(key) ?? await FetchChunkAsync(key, chunk, cancellationToken);
        }

        try
        {
            return await FetchChunkAsync(key, chunk, cancellationToken);
        }
        finally
        {
            _chunkFetches.TryRemove(new KeyValuePair<ChunkKey, Task>(key, fetching.Task));
            fetching.SetResult();
        }
    }

    /// <summary>Reads a chunk from Tier 2, checks its length and CRC-32C, and caches it with one reference taken.</summary>
    private async ValueTask<CachedFrame> FetchChunkAsync(ChunkKey key, ChunkInfo chunk, CancellationToken cancellationToken)
    {
        var owner = MemoryPool<byte>.Shared.Rent(Math.Max(chunk.Length, 1));
        try
        {
            var read = await _tier2!.ReadAsync(chunk.Name, 0, owner.Memory[..chunk.Length], cancellationToken);
            if (read != chunk.Length)
            {
                throw new DataCorruptionException($"Tier 2 chunk {chunk.Name} has {read} bytes; {chunk.Length} were written.");
            }

            var crc = Crc32C.Compute(owner.Memory.Span[..chunk.Length]);
            if (crc != chunk.Crc)
            {
                throw new DataCorruptionException($"Tier 2 chunk {chunk.Name} failed its CRC-32C check (recorded {chunk.Crc:x8}, computed {crc:x8}).");
            }

            SegmentStoreMetrics.Tier2ReadBytes.Add(chunk.Length);
        }
        catch
        {
            owner.Dispose();
            throw;
        }

        return _chunkCache!.AddAndAcquire(key, owner, chunk.Length);
    }
}
