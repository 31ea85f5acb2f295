using System.Diagnostics;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Containers;

/// <summary>Recovery: the log's operations and checkpoints replayed into both views, before the container serves.</summary>
internal sealed partial class ContainerMetadata
{
    // ---- Recovery --------------------------------------------------------------------------------

    public bool Replay(in DataFrame.Operation op, ReadOnlyMemory<byte> frame, LogAddress address, string where, List<DeletedSegment> deleted)
    {
        lock (_sync)
        {
            if (op.Type == OperationType.Checkpoint)
            {
                ApplyCheckpointLocked(ContainerCheckpoint.Deserialize(frame.Slice(op.DataOffset, op.DataLength), where));
                return false;
            }

            if (op.Type == OperationType.CreateSegment)
            {
                var created = new SegmentMetadata(op.SegmentId, op.Name!, op.Value) { IsDurable = true };
                if (op.DataLength > 0)
                {
                    var seed = WriterAndLoadRecords.ReadSeed(frame.Slice(op.DataOffset, op.DataLength), where);
                    created.Load.Seed(seed.EventRates, seed.ByteRates, seed.AgeMs);
                }

                _transactionSegments += created.IsTransaction && !_byName.ContainsKey(created.Name) ? 1 : 0;
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
                case OperationType.InheritWriters:
                    var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    foreach (var (writer, ranges) in WriterAndLoadRecords.ReadInherit(frame.Slice(op.DataOffset, op.DataLength), where).Writers)
                    {
                        segment.Inherit(writer, ranges, now);
                    }

                    break;
                case OperationType.Delete:
                    deleted.Add(new DeletedSegment(segment.Id, [.. segment.Chunks]));
                    segment.IsDeleted = segment.PendingDeleted = true;
                    _byId.Remove(segment.Id);
                    if (_byName.TryGetValue(segment.Name, out var named) && named == segment)
                    {
                        _byName.Remove(segment.Name);
                        _transactionSegments -= segment.IsTransaction ? 1 : 0;
                    }

                    ForgetMergeWriter(segment);

                    break;
            }

            return false;
        }
    }

    public void ApplyCheckpoint(ContainerCheckpoint checkpoint)
    {
        lock (_sync)
        {
            ApplyCheckpointLocked(checkpoint);
        }
    }

    public long ResetFlushAges()
    {
        long unflushed = 0;
        var now = Stopwatch.GetTimestamp();
        lock (_sync)
        {
            foreach (var segment in _byId.Values)
            {
                var pending = segment.Length - segment.StorageLength;
                unflushed += pending;
                segment.UnflushedSince = pending > 0 ? now : 0;
            }
        }

        return unflushed;
    }

    private void ApplyCheckpointLocked(ContainerCheckpoint checkpoint)
    {
        CheckpointMapping.Restore(checkpoint, _byName, _byId);
        _transactionSegments = _byName.Values.Count(s => s.IsTransaction);
        _nextSegmentId = Math.Max(_nextSegmentId, checkpoint.NextSegmentId);
    }
}
