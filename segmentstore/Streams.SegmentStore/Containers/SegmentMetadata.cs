using Streams.SegmentStore.Load;
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
    /// <summary>
    /// Writer records one segment keeps at most (the design's 100k): a writer is a few dozen bytes, so this bounds a
    /// segment's deduplication state to a few MiB however many writers come and go within the expiry.
    /// </summary>
    public const int DefaultMaxWriters = 100_000;

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
        IsTransaction = Common.Naming.TransactionName.IsTransaction(name);
    }

    public long Id { get; }

    public string Name { get; }

    /// <summary>A transaction's segment ("parent#txn.id"): bounded to what one merge carries, merged into its parent at commit.</summary>
    public bool IsTransaction { get; }

    public long CreatedAtUnixMs { get; }

    public SegmentIndex Index { get; } = new();

    /// <summary>The segment's measured load (rates and key histogram), ticked by the container's load timer.</summary>
    public SegmentLoadMeter Load { get; } = new();

    /// <summary>Writer records kept at most; beyond it the longest idle are evicted (<see cref="DefaultMaxWriters"/>).</summary>
    public int MaxWriters { get; init; } = DefaultMaxWriters;

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

    /// <summary>Writers, their highest accepted event numbers, when they last appended and what they inherited (for checkpoints).</summary>
    public List<CheckpointWriter> AcceptedWriters() =>
        [.. _writers.Select(w => new CheckpointWriter(w.Key, w.Value.Accepted, w.Value.LastSeenUnixMs, w.Value.Inherited))];

    /// <summary>Replaces the writers' state (replaying a checkpoint). A writer with no recorded time counts as seen now.</summary>
    public void RestoreWriters(IEnumerable<CheckpointWriter> writers, long nowUnixMs)
    {
        _writers.Clear();
        foreach (var w in writers)
        {
            _writers[w.Id] = new WriterState(w.EventNumber, w.EventNumber, w.LastSeenUnixMs > 0 ? w.LastSeenUnixMs : nowUnixMs, w.Inherited is { Count: > 0 } i ? [.. i] : null);
        }
    }

    /// <summary>Every writer's durable record (the segment's writer records).</summary>
    public List<WriterRecord> DurableWriters() =>
        [.. _writers.Select(w => new WriterRecord(w.Key, w.Value.Durable, w.Value.Inherited ?? []))];

    /// <summary>What a writer inherited from the segment's predecessors (empty if nothing).</summary>
    public IReadOnlyList<InheritedRange> InheritedBy(Guid writer) =>
        _writers.TryGetValue(writer, out var s) && s.Inherited is { } inherited ? inherited : [];

    /// <summary>
    /// Replaces what <paramref name="writer"/> inherited (its own event numbers are untouched); a writer that never
    /// wrote here gets a record with none of its own.
    /// </summary>
    public void Inherit(Guid writer, InheritedRange[] ranges, long nowUnixMs)
    {
        if (_writers.TryGetValue(writer, out var s))
        {
            _writers[writer] = s with { Inherited = ranges.Length == 0 ? null : ranges, LastSeenUnixMs = Math.Max(s.LastSeenUnixMs, nowUnixMs) };
            return;
        }

        MakeRoom();
        _writers[writer] = new WriterState(-1, -1, nowUnixMs, ranges.Length == 0 ? null : ranges);
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
        if (_writers.TryGetValue(writer, out var s))
        {
            _writers[writer] = s with { Accepted = eventNumber, LastSeenUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
            return;
        }

        MakeRoom();
        _writers[writer] = new WriterState(eventNumber, -1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), null);
    }

    public void MakeDurable(Guid writer, long eventNumber)
    {
        if (_writers.TryGetValue(writer, out var s))
        {
            _writers[writer] = s with { Accepted = Math.Max(s.Accepted, eventNumber), Durable = eventNumber, LastSeenUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
            return;
        }

        MakeRoom();
        _writers[writer] = new WriterState(eventNumber, eventNumber, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), null);
    }

    /// <summary>Forgets a writer with nothing in flight (a merged transaction segment's, once the source is gone).</summary>
    public void Forget(Guid writer)
    {
        if (_writers.TryGetValue(writer, out var s) && s.Accepted == s.Durable)
        {
            _writers.Remove(writer);
        }
    }

    /// <summary>
    /// Before a new writer joins a full segment: evicts the longest idle writers with nothing in flight, a hundredth of
    /// the limit at once, so a stream of new writers costs one scan per many arrivals, not one per arrival.
    /// </summary>
    private void MakeRoom()
    {
        if (_writers.Count < MaxWriters)
        {
            return;
        }

        var idle = new List<(long LastSeen, Guid Writer)>(_writers.Count);
        foreach (var (writer, state) in _writers)
        {
            if (state.Accepted == state.Durable)
            {
                idle.Add((state.LastSeenUnixMs, writer));
            }
        }

        idle.Sort();
        var evict = Math.Min(idle.Count, Math.Max(1, MaxWriters / 100) + _writers.Count - MaxWriters);
        for (var i = 0; i < evict; i++)
        {
            _writers.Remove(idle[i].Writer);
        }

        SegmentStoreMetrics.WriterEvictions.Add(evict);
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

    private readonly record struct WriterState(long Accepted, long Durable, long LastSeenUnixMs, InheritedRange[]? Inherited);
}
