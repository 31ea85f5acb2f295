using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// A container's recovery (<see cref="IContainerRecovery"/>): one pass over the log, before the other parts start. It
/// owns no lasting state (only the pages of the checkpoint being read back) and takes no lock of its own.
/// <para>
/// Checkpoints. A paged checkpoint (<see cref="CheckpointPages"/>) is applied once all its pages are read; anything
/// between its pages means its owner died before the rest, and that one is ignored. Applying a checkpoint replaces the
/// state built so far, and its first frame becomes a truncation point.
/// </para>
/// </summary>
internal sealed class ContainerRecovery : IContainerRecovery
{
    private readonly int _containerId;
    private readonly IOperationLog _log;
    private readonly IContainerMetadata _metadata;
    private readonly IReadIndex _readIndex;
    private readonly IStorageWriter _storageWriter;
    private readonly ILogger _logger;

    public ContainerRecovery(int containerId, IOperationLog log, IContainerMetadata metadata, IReadIndex readIndex, IStorageWriter storageWriter, ILogger logger)
    {
        _containerId = containerId;
        _log = log;
        _metadata = metadata;
        _readIndex = readIndex;
        _storageWriter = storageWriter;
        _logger = logger;
    }

    public async Task<RecoveryResult> RecoverAsync(CancellationToken cancellationToken = default)
    {
        var started = DateTime.UtcNow;
        long? expected = null;
        long nextSequence = 0;
        var frames = 0;
        var checkpoints = new List<LogAddress>();
        var deleted = new List<DeletedSegment>();
        using var pages = new CheckpointCollector();
        await foreach (var record in _log.ReadAllAsync(cancellationToken))
        {
            var cached = false;
            try
            {
                var where = $"container {_containerId} log address {record.Address}";
                var (sequence, _) = DataFrame.Verify(record.Memory.Span, where);
                if (expected is { } next && sequence != next)
                {
                    throw new DataCorruptionException($"Frame {next} of container {_containerId} is missing: the log continues with frame {sequence} at {record.Address}.");
                }

                expected = sequence + 1;
                nextSequence = sequence + 1;
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
                            _metadata.ApplyCheckpoint(ContainerCheckpoint.Deserialize(pages.Data, where));
                            checkpoints.Add(pages.Start);
                            pages.Clear(record);
                        }

                        continue;
                    }

                    // Anything between the pages of a checkpoint: its owner died before the rest; that one is ignored.
                    pages.Clear(record);
                    hasAppends |= _metadata.Replay(op, record.Memory, record.Address, where, deleted);
                    if (op.Type == OperationType.Checkpoint)
                    {
                        checkpoints.Add(record.Address);
                    }
                }

                if (hasAppends)
                {
                    // Keep the newest frames warm for tail readers; the cache evicts the oldest as it fills.
                    _readIndex.OnFrameDurable(record.Address, record.Data, record.Length);
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

        _storageWriter.OnRecovered(checkpoints, deleted, _metadata.ResetFlushAges());
        _logger.LogInformation("Container {Container} replayed {Frames} frames in {Elapsed:F0} ms.", _containerId, frames, (DateTime.UtcNow - started).TotalMilliseconds);
        return new RecoveryResult(frames, nextSequence);
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
