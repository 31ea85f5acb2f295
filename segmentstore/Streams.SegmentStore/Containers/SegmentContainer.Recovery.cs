using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

public sealed partial class SegmentContainer
{
    /// <summary>
    /// Rebuilds the container's state by replaying its log: every frame is verified (checksum, and that frame
    /// sequence numbers have no gap) and its operations applied. A corrupt or missing frame stops recovery:
    /// serving a container whose history has a hole would hand out wrong data. Returns how many frames it replayed.
    /// </summary>
    private async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        long? expected = null;
        var frames = 0;
        using var pages = new CheckpointCollector();
        await foreach (var record in _log.ReadAllAsync(cancellationToken))
        {
            var cached = false;
            try
            {
                var where = $"container {Id} log address {record.Address}";
                var (sequence, _) = DataFrame.Verify(record.Memory.Span, where);
                if (expected is { } next && sequence != next)
                {
                    throw new DataCorruptionException($"Frame {next} of container {Id} is missing: the log continues with frame {sequence} at {record.Address}.");
                }

                expected = sequence + 1;
                _nextSequence = sequence + 1;
                var hasAppends = false;
                foreach (var op in DataFrame.Operations(record.Memory))
                {
                    if (op.Type == OperationType.CheckpointPage)
                    {
                        var body = record.Memory.Slice(op.DataOffset, op.DataLength);
                        var (id, index, count) = CheckpointPages.ReadHeader(body.Span, where);
                        pages.Add(id, index, count, body[CheckpointPages.HeaderSize..], record);
                        if (pages.IsComplete)
                        {
                            ApplyCheckpoint(ContainerCheckpoint.Deserialize(pages.Data, where), pages.Start);
                            pages.Clear(record);
                        }

                        continue;
                    }

                    // Anything between the pages of a checkpoint: its owner died before the rest; that one is ignored.
                    pages.Clear(record);
                    hasAppends |= Replay(op, record.Memory, record.Address, where);
                }

                if (hasAppends)
                {
                    // Keep the newest frames warm for tail readers; the cache evicts the oldest as it fills.
                    _cache.Add(new FrameKey(Id, record.Address), record.Data, record.Length);
                    cached = true;
                }

                frames++;
            }
            finally
            {
                if (!cached && !pages.Holds(record))
                {
                    record.Dispose();
                }
            }
        }

        ResetStorageState();
        _logger.LogInformation("Container {Container} replayed {Frames} frames in {Elapsed:F0} ms.", Id, frames, (DateTime.UtcNow - started).TotalMilliseconds);
        return frames;
    }

    /// <summary>Applies one logged operation to both views. Returns true for appends.</summary>
    private bool Replay(in DataFrame.Operation op, ReadOnlyMemory<byte> frame, LogAddress address, string where)
    {
        if (op.Type == OperationType.Checkpoint)
        {
            ApplyCheckpoint(ContainerCheckpoint.Deserialize(frame.Slice(op.DataOffset, op.DataLength), where), address);
            return false;
        }

        if (op.Type == OperationType.CreateSegment)
        {
            var created = new SegmentMetadata(op.SegmentId, op.Name!, op.Value) { IsDurable = true };
            _byName[created.Name] = created;
            _byId[created.Id] = created;
            _nextSegmentId = Math.Max(_nextSegmentId, op.SegmentId + 1);
            return false;
        }

        if (!_byId.TryGetValue(op.SegmentId, out var segment))
        {
            throw new DataCorruptionException($"{where}: operation {op.Type} names segment id {op.SegmentId}, which does not exist.");
        }

        switch (op.Type)
        {
            case OperationType.Append:
                if (op.Value != segment.Length)
                {
                    throw new DataCorruptionException($"{where}: append to {segment.Name} at offset {op.Value}, but the segment's length is {segment.Length}.");
                }

                segment.Index.Add(new IndexEntry(op.Value, op.DataLength, address, op.DataOffset));
                segment.Length = segment.PendingLength = op.Value + op.DataLength;
                segment.MakeDurable(op.WriterId, op.LastEventNumber);
                return true;
            case OperationType.Seal:
                segment.IsSealed = segment.PendingSealed = true;
                break;
            case OperationType.Truncate:
                segment.StartOffset = segment.PendingStartOffset = op.Value;
                segment.Index.TruncateBefore(op.Value);
                break;
            case OperationType.StorageFlushed:
                var (_, chunk) = StorageRecords.ReadFlushed(frame.Slice(op.DataOffset, op.DataLength), where);
                if (chunk.Start != segment.StorageLength)
                {
                    throw new DataCorruptionException($"{where}: chunk {chunk.Name} of {segment.Name} starts at {chunk.Start}, but {segment.StorageLength} bytes were in Tier 2.");
                }

                segment.StorageLength = segment.DurableStorageLength = chunk.End;
                if (chunk.Name.Length > 0)
                {
                    segment.Chunks.Add(chunk);
                }

                break;
            case OperationType.Delete:
                OnSegmentDeleted(segment);
                segment.IsDeleted = segment.PendingDeleted = true;
                _byId.Remove(segment.Id);
                if (_byName.TryGetValue(segment.Name, out var named) && named == segment)
                {
                    _byName.Remove(segment.Name);
                }

                break;
        }

        return false;
    }

    /// <summary>The pages of the checkpoint being read back; it keeps their log records until the checkpoint is applied.</summary>
    private sealed class CheckpointCollector : IDisposable
    {
        private readonly List<ReadOnlyMemory<byte>> _data = [];
        private readonly List<LogRecord> _records = [];
        private long _id;
        private int _count;

        public IReadOnlyList<ReadOnlyMemory<byte>> Data => _data;

        /// <summary>Where the checkpoint's first page is: recovery can start there.</summary>
        public LogAddress Start { get; private set; }

        public bool IsComplete => _count > 0 && _data.Count == _count;

        /// <summary>Whether the collector keeps <paramref name="record"/> (then its reader must not dispose it).</summary>
        public bool Holds(LogRecord record) => _records.Count > 0 && _records[^1].Address == record.Address;

        /// <summary>Adds a page of <paramref name="record"/>, which the collector then keeps until it is cleared.</summary>
        public void Add(long id, int index, int count, ReadOnlyMemory<byte> data, LogRecord record)
        {
            if (index == 0)
            {
                Clear(record);
                (_id, _count, Start) = (id, count, record.Address);
            }
            else if (id != _id || index != _data.Count || count != _count)
            {
                Clear(record); // a page of a checkpoint whose beginning was cut short or truncated away
                return;
            }

            _data.Add(data);
            if (!Holds(record))
            {
                _records.Add(record);
            }
        }

        /// <summary>Forgets the pages and releases their records, except <paramref name="inUse"/> (its reader still reads it).</summary>
        public void Clear(LogRecord? inUse = null)
        {
            foreach (var record in _records)
            {
                if (inUse is not { } current || record.Address != current.Address)
                {
                    record.Dispose();
                }
            }

            _records.Clear();
            _data.Clear();
            _count = 0;
        }

        public void Dispose() => Clear();
    }
}
