using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// One segment's state in its container. Two views are kept:
/// <list type="bullet">
/// <item>accepted (Pending*): includes operations accepted into the log but not yet durable. New operations
/// are validated against it (offsets, sealing, writer event numbers). Guarded by the container's lock.</item>
/// <item>durable (the rest): what readers see and what survives a crash. Written by the commit path only.</item>
/// </list>
/// </summary>
internal sealed class SegmentMetadata
{
    private readonly Dictionary<Guid, WriterState> _writers = [];
    private TaskCompletionSource? _changed;
    private long _length;
    private long _startOffset;
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

    // ---- Accepted view (container lock) ----

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
        _writers[writer] = new WriterState(eventNumber, durable);
    }

    public void MakeDurable(Guid writer, long eventNumber)
    {
        var accepted = _writers.TryGetValue(writer, out var s) ? Math.Max(s.Accepted, eventNumber) : eventNumber;
        _writers[writer] = new WriterState(accepted, eventNumber);
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

    private readonly record struct WriterState(long Accepted, long Durable);
}
