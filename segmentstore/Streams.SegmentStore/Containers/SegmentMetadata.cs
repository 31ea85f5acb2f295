using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// One segment's state in its container. Two views are kept:
/// <list type="bullet">
/// <item>accepted (Pending*): includes operations accepted into the log but not yet durable. New operations
/// are validated against it (offsets, sealing, writer event numbers). Guarded by the <see cref="ContainerMetadata"/>'s lock.</item>
/// <item>durable (the rest): what readers see and what survives a crash. Written by the commit path only.</item>
/// </list>
/// </summary>
public sealed class SegmentMetadata
{
    private readonly Dictionary<Guid, WriterState> _writers = [];
    private TaskCompletionSource? _changed;
    private long _length;
    private long _startOffset;
    private long _durableStorageLength;
    private volatile bool _sealed;
    private volatile bool _durable;

    public SegmentMetadata(long id, string name, long createdAtUnixMs)
    {
        Id = id;
        Name = name;
        CreatedAtUnixMs = createdAtUnixMs;
    }

    public long Id { get; }

    public string Name { get; }

    public long CreatedAtUnixMs { get; }

    public SegmentIndex Index { get; } = new();

    // ---- Durable view ----

    /// <summary>True once the segment's creation is durable.</summary>
    public bool IsDurable { get => _durable; set => _durable = value; }

    public long Length { get => Volatile.Read(ref _length); set => Volatile.Write(ref _length, value); }

    public long StartOffset { get => Volatile.Read(ref _startOffset); set => Volatile.Write(ref _startOffset, value); }

    public bool IsSealed { get => _sealed; set => _sealed = value; }

    public bool IsDeleted { get; set; }

    /// <summary>Bytes [0, DurableStorageLength) are in Tier 2 (or truncated), durably recorded in the log.</summary>
    public long DurableStorageLength { get => Volatile.Read(ref _durableStorageLength); set => Volatile.Write(ref _durableStorageLength, value); }

    // ---- Accepted view (the metadata's lock) ----

    /// <summary>Bytes [0, StorageLength) are in Tier 2, or below the start offset, counting flushes not yet durable in the log.</summary>
    public long StorageLength { get; set; }

    /// <summary>
    /// The segment's chunks in Tier 2, in offset order. A chunk joins when its flush is accepted (its bytes are already
    /// whole in Tier 2) and leaves once deleted after a truncation. A chunk with an empty name stands for truncated
    /// bytes that were never written.
    /// </summary>
    public List<ChunkInfo> Chunks { get; } = [];

    /// <summary>Stopwatch timestamp since when the segment has durable bytes not in Tier 2; 0 when it has none.</summary>
    public long UnflushedSince { get; set; }

    /// <summary>Writers, their highest accepted event numbers and when they last appended (for checkpoints).</summary>
    public List<CheckpointWriter> AcceptedWriters() => [.. _writers.Select(w => new CheckpointWriter(w.Key, w.Value.Accepted, w.Value.LastSeenUnixMs))];

    /// <summary>Replaces the writers' state (replaying a checkpoint). A writer with no recorded time counts as seen now.</summary>
    public void RestoreWriters(IEnumerable<CheckpointWriter> writers, long nowUnixMs)
    {
        _writers.Clear();
        foreach (var w in writers)
        {
            _writers[w.Id] = new WriterState(w.EventNumber, w.EventNumber, w.LastSeenUnixMs > 0 ? w.LastSeenUnixMs : nowUnixMs);
        }
    }

    /// <summary>
    /// Forgets the writers that have appended nothing since <paramref name="cutoffUnixMs"/> and have nothing in
    /// flight, so deduplication state does not grow with every writer that ever came and went. Returns how many went.
    /// </summary>
    public int ExpireWriters(long cutoffUnixMs)
    {
        List<Guid>? expired = null;
        foreach (var (writer, state) in _writers)
        {
            if (state.LastSeenUnixMs < cutoffUnixMs && state.Accepted == state.Durable)
            {
                (expired ??= []).Add(writer);
            }
        }

        foreach (var writer in expired ?? [])
        {
            _writers.Remove(writer);
        }

        return expired?.Count ?? 0;
    }

    /// <summary>The chunk holding <paramref name="offset"/>, or null.</summary>
    public ChunkInfo? FindChunk(long offset)
    {
        var chunks = Chunks;
        int lo = 0, hi = chunks.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var chunk = chunks[mid];
            if (offset < chunk.Start)
            {
                hi = mid - 1;
            }
            else if (offset >= chunk.End)
            {
                lo = mid + 1;
            }
            else
            {
                return chunk;
            }
        }

        return null;
    }

    public long PendingLength { get; set; }

    public long PendingStartOffset { get; set; }

    public bool PendingSealed { get; set; }

    public bool PendingDeleted { get; set; }

    /// <summary>The highest accepted event number of a writer, -1 if none.</summary>
    public long AcceptedEventNumber(Guid writer) => _writers.TryGetValue(writer, out var s) ? s.Accepted : -1;

    /// <summary>The highest durable event number of a writer, -1 if none.</summary>
    public long DurableEventNumber(Guid writer) => _writers.TryGetValue(writer, out var s) ? s.Durable : -1;

    public void Accept(Guid writer, long eventNumber)
    {
        var durable = _writers.TryGetValue(writer, out var s) ? s.Durable : -1;
        _writers[writer] = new WriterState(eventNumber, durable, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    public void MakeDurable(Guid writer, long eventNumber)
    {
        var accepted = _writers.TryGetValue(writer, out var s) ? Math.Max(s.Accepted, eventNumber) : eventNumber;
        _writers[writer] = new WriterState(accepted, eventNumber, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>A task that completes at the next change of the durable view (data, seal, truncation, deletion).</summary>
    public Task WhenChanged()
    {
        lock (_writers)
        {
            _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _changed.Task;
        }
    }

    public void SignalChanged()
    {
        TaskCompletionSource? changed;
        lock (_writers)
        {
            changed = _changed;
            _changed = null;
        }

        changed?.TrySetResult();
    }

    private readonly record struct WriterState(long Accepted, long Durable, long LastSeenUnixMs);
}
