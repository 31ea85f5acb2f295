using System.Buffers;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.Common.Wire;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// A container's segments and writers (<see cref="IContainerMetadata"/>).
/// <para>
/// State and lock. This class owns the segment maps, the next segment id and every segment's accepted view (Pending*,
/// storage length, chunks, writers), under its own lock. Validation and the hand-off to the operation log happen in one
/// critical section, so the log's order is the order of acceptance (lock order: metadata, then operation log; the log
/// never calls back). The durable view is written only in <see cref="ApplyDurable"/>, on the log's commit path, and read
/// without the lock (its fields are volatile). Recovery (replaying the log into both views) is in
/// ContainerMetadata.Recovery.cs.
/// </para>
/// </summary>
internal sealed partial class ContainerMetadata : IContainerMetadata
{
    private readonly int _containerId;
    private readonly IOperationLog _log;
    private readonly Tier1Budget _budget;
    private readonly ContainerOptions _options;
    private readonly ILogger _logger;
    private readonly object _sync = new();
    private readonly Dictionary<string, SegmentMetadata> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<long, SegmentMetadata> _byId = [];
    private long _nextSegmentId = 1;
    private int _transactionSegments;

    public ContainerMetadata(int containerId, IOperationLog log, Tier1Budget budget, ContainerOptions options, ILogger logger)
    {
        _containerId = containerId;
        _log = log;
        _budget = budget;
        _options = options;
        _logger = logger;
    }

    public int SegmentCount
    {
        get
        {
            lock (_sync)
            {
                return _byId.Count;
            }
        }
    }

    // ---- Acceptance ------------------------------------------------------------------------------

    public AppendAcceptance TryAppend(
        string segmentName, Guid writer, long lastEventNumber, int eventCount, long? expectedOffset, in ReadOnlySequence<byte> data,
        IOperationCallback callback, long token, out OperationOutcome outcome, ulong keySample = 0)
    {
        if (ValidateBlock(lastEventNumber, eventCount, data) is { } invalid)
        {
            outcome = OperationOutcome.Fail(OutcomeStatus.InvalidArgument, invalid);
            return AppendAcceptance.Completed;
        }

        lock (_sync)
        {
            if (Find(segmentName, out var segment) is { } missing)
            {
                outcome = missing;
                return AppendAcceptance.Completed;
            }

            if (lastEventNumber <= segment.AcceptedEventNumber(writer))
            {
                // Re-sent after a reconnect: acknowledge once the original is durable, never append it twice. The ack
                // carries the writer's durable number, not the block's: acknowledgements are cumulative, never backwards.
                var duplicate = new PendingOperation
                {
                    Type = OperationType.DuplicateBarrier, Segment = segment, Writer = writer, EventNumber = lastEventNumber,
                    Callback = callback, Token = token,
                };
                outcome = new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(writer));
                return _log.TryAttachBarrier(duplicate) ? AppendAcceptance.Accepted : AppendAcceptance.Completed;
            }

            if (segment.PendingSealed)
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.SegmentSealed, $"Segment {segmentName} is sealed.", segment.PendingLength);
                return AppendAcceptance.Completed;
            }

            if (expectedOffset is { } expected && expected != segment.PendingLength)
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.ConditionFailed,
                    $"Segment {segmentName} has length {segment.PendingLength}, not the expected {expected}.", segment.PendingLength);
                return AppendAcceptance.Completed;
            }

            if (segment.IsTransaction && segment.PendingLength + data.Length > MaxTransactionSegmentBytes)
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                    $"A transaction holds at most {MaxTransactionSegmentBytes} bytes per segment (what one atomic merge carries); {segmentName} has {segment.PendingLength} and the block {data.Length}. Split the work into several transactions.",
                    segment.PendingLength);
                return AppendAcceptance.Completed;
            }

            if (_budget.Check(out var waitForTier2) is { } refused)
            {
                outcome = refused;
                return AppendAcceptance.Completed;
            }

            outcome = default;
            if (waitForTier2)
            {
                return AppendAcceptance.NoCapacity;
            }

            var offset = segment.PendingLength;
            var append = new PendingOperation
            {
                Type = OperationType.Append, Segment = segment, Offset = offset, Length = (int)data.Length,
                Writer = writer, EventNumber = lastEventNumber, EventCount = eventCount, Callback = callback, Token = token,
            };
            switch (_log.TryAppend(append, data))
            {
                case LogAcceptance.NoCapacity:
                    return AppendAcceptance.NoCapacity;
                case LogAcceptance.Unavailable:
                    outcome = NotRunning();
                    return AppendAcceptance.Completed;
            }

            segment.PendingLength = offset + data.Length;
            segment.Accept(writer, lastEventNumber);
            segment.Load.Record(eventCount, data.Length, keySample);
            _budget.Add(data.Length);
            return AppendAcceptance.Accepted;
        }
    }

    public OperationOutcome? SetupAppend(string segmentName, Guid writer, IOperationCallback callback, long token)
    {
        lock (_sync)
        {
            var missing = Find(segmentName, out var segment);
            if (missing is not null && !TryCreateTransaction(segmentName, out segment, ref missing))
            {
                return missing;
            }

            var barrier = new PendingOperation { Type = OperationType.SetupBarrier, Segment = segment, Writer = writer, Callback = callback, Token = token };
            return _log.TryAttachBarrier(barrier) ? null : new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(writer));
        }
    }

    public OperationOutcome? Create(string name, IOperationCallback callback, LoadState? seed = null)
    {
        lock (_sync)
        {
            if (_log.Unavailable() is { } unavailable)
            {
                return unavailable;
            }

            if (_byName.ContainsKey(name))
            {
                return OperationOutcome.Fail(OutcomeStatus.SegmentExists, $"Segment {name} already exists.");
            }

            var segment = new SegmentMetadata(_nextSegmentId, name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            var seedBody = seed is null ? [] : WriterAndLoadRecords.Seed(seed);
            if (Add(new PendingOperation { Type = OperationType.CreateSegment, Segment = segment, Callback = callback }, seedBody) is { } refused)
            {
                return refused;
            }

            if (seed is not null)
            {
                segment.Load.Seed(seed.EventRates, seed.ByteRates, seed.AgeMs);
            }

            Register(segment);
            return null;
        }
    }

    /// <summary>A segment just handed to the log joins the accepted view and takes the next id (lock held).</summary>
    private void Register(SegmentMetadata segment)
    {
        _nextSegmentId++;
        _byName.Add(segment.Name, segment);
        _byId.Add(segment.Id, segment);
    }

    public OperationOutcome? Inherit(string name, IReadOnlyList<(Guid Writer, InheritedRange[] Ranges)> writers, IOperationCallback callback)
    {
        var body = WriterAndLoadRecords.Inherit(0, writers);
        if (body.Length > _log.MaxRecordSize - DataFrame.HeaderSize - DataFrame.OperationHeaderSize - DataFrame.TrailerSize)
        {
            return OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                $"{writers.Count} writer records are {body.Length} bytes, more than one log record holds ({_log.MaxRecordSize}); send them in several requests.");
        }

        lock (_sync)
        {
            if (Find(name, out var segment) is { } missing)
            {
                return missing;
            }

            WriteSegmentId(body, segment.Id);
            if (Add(new PendingOperation { Type = OperationType.InheritWriters, Segment = segment, Callback = callback }, body) is { } refused)
            {
                return refused;
            }

            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            foreach (var (writer, ranges) in writers)
            {
                segment.Inherit(writer, ranges, now);
            }

            return null;
        }
    }

    /// <summary>The record body starts with the segment id, known only under the lock.</summary>
    private static void WriteSegmentId(byte[] body, long segmentId) => System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(body, segmentId);

    public OperationOutcome? Mutate(string name, OperationType type, long offset, IOperationCallback callback)
    {
        lock (_sync)
        {
            if (Find(name, out var segment) is { } missing)
            {
                return missing;
            }

            if (type == OperationType.Seal && segment.PendingSealed)
            {
                // Sealing is idempotent: answer once the earlier seal is durable.
                return _log.TryAttachBarrier(new PendingOperation { Type = OperationType.DuplicateBarrier, Segment = segment, Callback = callback })
                    ? null
                    : new OperationOutcome(OutcomeStatus.Success, segment.Length);
            }

            if (type == OperationType.Truncate && (offset < segment.PendingStartOffset || offset > segment.PendingLength))
            {
                return OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                    $"Cannot truncate {name} at {offset}: valid offsets are {segment.PendingStartOffset} to {segment.PendingLength}.",
                    segment.PendingLength);
            }

            // Validation is done: from here the operation goes into a frame. A seal records the length it seals at.
            var value = type == OperationType.Seal ? segment.PendingLength : offset;
            if (Add(new PendingOperation { Type = type, Segment = segment, Offset = value, Callback = callback }) is { } refused)
            {
                return refused;
            }

            switch (type)
            {
                case OperationType.Seal:
                    segment.PendingSealed = true;
                    break;
                case OperationType.Truncate:
                    segment.PendingStartOffset = offset;
                    break;
                default:
                    segment.PendingDeleted = true;
                    _budget.Release(segment.PendingLength - segment.StorageLength);
                    _byName.Remove(name);
                    _transactionSegments -= segment.IsTransaction ? 1 : 0;
                    break;
            }

            return null;
        }
    }

    public OperationOutcome? AcceptFlush(SegmentMetadata segment, ChunkInfo chunk, IOperationCallback callback)
    {
        lock (_sync)
        {
            if (_log.Unavailable() is { } unavailable)
            {
                return unavailable;
            }

            if (segment.PendingDeleted || !_byId.ContainsKey(segment.Id))
            {
                return OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {segment.Name} was deleted.");
            }

            if (chunk.Start != segment.StorageLength)
            {
                throw new InvalidOperationException($"Chunk {chunk.Name} starts at {chunk.Start}, but {segment.Name} has {segment.StorageLength} bytes in Tier 2.");
            }

            var flushed = new PendingOperation { Type = OperationType.StorageFlushed, Segment = segment, Offset = chunk.End, Length = chunk.Length, Callback = callback };
            if (Add(flushed, StorageRecords.Flushed(segment.Id, chunk)) is { } refused)
            {
                return refused;
            }

            segment.StorageLength = chunk.End;
            if (chunk.Name.Length > 0)
            {
                segment.Chunks.Add(chunk);
            }

            return null;
        }
    }

    public OperationOutcome? AcceptCheckpoint(long checkpointId, Func<ContainerCheckpoint, List<DataFrameBuilder>> paginate, IOperationCallback callback)
    {
        lock (_sync)
        {
            if (_log.Unavailable() is { } unavailable)
            {
                return unavailable;
            }

            // The snapshot is taken here, and its frame takes its place in the log now: whatever is accepted after
            // this lock goes to later frames. Serializing it (a second for a million chunks) happens off the lock.
            var snapshot = Snapshot();
            var pages = Task.Run(() => paginate(snapshot), CancellationToken.None);
            if (_log.TryAddCheckpoint(new PendingCheckpoint(checkpointId, pages, callback)) == LogAcceptance.Accepted)
            {
                return null;
            }

            // The log stopped meanwhile: the pages will never be written.
            pages.ContinueWith(static t => t.Result.ForEach(page => page.Dispose()), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            return NotRunning();
        }
    }

    // ---- Queries ---------------------------------------------------------------------------------

    public SegmentMetadata? FindDurable(string name)
    {
        lock (_sync)
        {
            return _byName.TryGetValue(name, out var segment) && segment.IsDurable ? segment : null;
        }
    }

    public (bool Sealed, List<WriterRecord> Writers)? WriterRecords(string name)
    {
        lock (_sync)
        {
            return _byName.TryGetValue(name, out var segment) && segment.IsDurable ? (segment.IsSealed, segment.DurableWriters()) : null;
        }
    }

    public (bool Sealed, long LastEventNumber, IReadOnlyList<InheritedRange> Inherited) DescribeWriter(string name, Guid writer)
    {
        lock (_sync)
        {
            return _byName.TryGetValue(name, out var segment)
                ? (segment.IsSealed, segment.DurableEventNumber(writer), segment.InheritedBy(writer))
                : (false, -1, []);
        }
    }

    public IReadOnlyList<string> ListSegments()
    {
        lock (_sync)
        {
            return [.. _byName.Values.Where(s => s.IsDurable).Select(s => s.Name)];
        }
    }

    public ChunkInfo? FindChunk(SegmentMetadata segment, long offset)
    {
        lock (_sync)
        {
            return segment.FindChunk(offset);
        }
    }

    public (long StorageLength, long Length, long StartOffset) StorageView(SegmentMetadata segment)
    {
        lock (_sync)
        {
            return (segment.StorageLength, segment.Length, segment.StartOffset);
        }
    }

    public void RemoveChunks(SegmentMetadata segment, int count)
    {
        lock (_sync)
        {
            segment.Chunks.RemoveRange(0, count);
        }
    }

    public void ForEachSegment<TState>(TState state, Action<SegmentMetadata, TState> visit)
    {
        lock (_sync)
        {
            foreach (var segment in _byId.Values)
            {
                visit(segment, state);
            }
        }
    }

    public void SignalAll()
    {
        List<SegmentMetadata> segments;
        lock (_sync)
        {
            segments = [.. _byName.Values];
        }

        foreach (var segment in segments)
        {
            segment.SignalChanged();
        }
    }

    // ---- The durable view ------------------------------------------------------------------------

    public bool ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed, List<DeletedSegment> deleted)
    {
        var storageChanged = false;
        lock (_sync)
        {
            foreach (var op in frame.Operations)
            {
                var outcome = ApplyOperation(op, address, deleted, ref storageChanged);
                if (op.Callback is not null)
                {
                    answers.Add(new DurableAnswer(op.Callback, op.Token, outcome));
                }

                changed.Add(op.Segment);
            }

            frame.Applied = true;
        }

        return storageChanged;
    }

    /// <summary>Applies one operation of a durable frame to the durable view (lock held).</summary>
    private OperationOutcome ApplyOperation(in PendingOperation op, LogAddress address, List<DeletedSegment> deleted, ref bool storageChanged)
    {
        var segment = op.Segment;
        switch (op.Type)
        {
            case OperationType.CreateSegment:
                segment.IsDurable = true;
                break;
            case OperationType.Append:
                segment.Index.Add(new IndexEntry(op.Offset, op.Length, address, op.FrameOffset));
                segment.Length = op.Offset + op.Length;
                segment.MakeDurable(op.Writer, op.EventNumber);
                if (segment.UnflushedSince == 0)
                {
                    segment.UnflushedSince = Stopwatch.GetTimestamp();
                }

                return new OperationOutcome(OutcomeStatus.Success, segment.Length, op.EventNumber);
            case OperationType.Seal:
                segment.IsSealed = true;
                storageChanged = true;
                break;
            case OperationType.Truncate:
                segment.StartOffset = op.Offset;
                segment.Index.TruncateBefore(op.Offset);
                storageChanged = true;
                break;
            case OperationType.Delete:
                segment.IsDeleted = true;
                segment.Index.Clear();
                _byId.Remove(segment.Id);
                deleted.Add(new DeletedSegment(segment.Id, [.. segment.Chunks]));
                ForgetMergeWriter(segment);
                storageChanged = true;
                break;
            case OperationType.StorageFlushed:
                segment.DurableStorageLength = op.Offset;
                _budget.Release(op.Length);
                segment.UnflushedSince = op.Offset >= segment.Length ? 0 : Stopwatch.GetTimestamp();
                SegmentStoreMetrics.Tier2FlushedBytes.Add(op.Length);
                break;
            case OperationType.SetupBarrier:
                return new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(op.Writer));
            case OperationType.DuplicateBarrier:
                return new OperationOutcome(OutcomeStatus.Success, segment.Length, Math.Max(op.EventNumber, segment.DurableEventNumber(op.Writer)));
        }

        return new OperationOutcome(OutcomeStatus.Success, segment.Length);
    }

    /// <summary>The accepted state: the effect of every operation in the log so far (lock held).</summary>
    private ContainerCheckpoint Snapshot()
    {
        var cutoff = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)_options.WriterExpiry.TotalMilliseconds;
        var checkpoint = CheckpointMapping.Capture(_byName.Values, _nextSegmentId, cutoff, out var expired);
        if (expired > 0)
        {
            _logger.LogInformation("Container {Container} forgot {Writers} writer(s) idle for more than {Expiry}.", _containerId, expired, _options.WriterExpiry);
        }

        return checkpoint;
    }

    /// <summary>The accepted segment named <paramref name="name"/>, or why there is none to operate on (lock held).</summary>
    private OperationOutcome? Find(string name, out SegmentMetadata segment)
    {
        if (_log.Unavailable() is { } unavailable)
        {
            segment = null!;
            return unavailable;
        }

        return _byName.TryGetValue(name, out segment!) ? null : OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {name} does not exist.");
    }

    private OperationOutcome? Add(in PendingOperation operation, ReadOnlySpan<byte> body = default) =>
        _log.TryAdd(operation, body) == LogAcceptance.Accepted ? null : NotRunning();

    /// <summary>The answer when the log refused an operation: it stopped between the check and the hand-off.</summary>
    private OperationOutcome NotRunning() =>
        _log.Unavailable() ?? OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, $"Container {_containerId} is not running; retry.");

    private string? ValidateBlock(long lastEventNumber, int eventCount, in ReadOnlySequence<byte> data)
    {
        if (data.IsEmpty || eventCount <= 0)
        {
            return "An append block must hold at least one event.";
        }

        if (lastEventNumber < 0)
        {
            return $"Event numbers start at 0 (the block's last event number is {lastEventNumber}).";
        }

        if (data.Length > _log.MaxRecordSize - DataFrame.HeaderSize - DataFrame.AppendOverhead - DataFrame.TrailerSize)
        {
            return $"An append block of {data.Length} bytes is too large.";
        }

        return EventFraming.Validate(data, eventCount) is { } framing ? $"Malformed append block: {framing}." : null;
    }
}
