using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// Checkpoints and log truncation behind Tier 2.
/// <para>
/// Truncation. The log is truncated only at a checkpoint (the whole container metadata, including chunk lists and
/// writers' event numbers), and only at a checkpoint older than every frame that still holds bytes not in Tier 2.
/// Recovery then starts at that checkpoint and loses nothing: earlier bytes are in Tier 2, later ones are replayed.
/// </para>
/// <para>
/// Size. A checkpoint grows with the container's metadata (a container with a million chunks and a million writers
/// has one of about 100 MiB), so it is written as pages, one per frame (<see cref="CheckpointPages"/>), never as one
/// record that the log could refuse. The snapshot is taken under the container's lock, where its placeholder frame takes
/// its turn in the log; it is serialized off the lock, and the writer writes its pages as consecutive records in that
/// turn, so nothing is logged between them. A checkpoint becomes a truncation point once all its pages are durable. And the next one
/// waits until the log has grown by <see cref="CheckpointSpacing"/> times the last one's size (at least
/// CheckpointEvery), so checkpoints never take more than a fraction of the log's bandwidth however large they get.
/// </para>
/// </summary>
public sealed partial class SegmentContainer
{
    /// <summary>The log grows by at least this many times the last checkpoint's size before the next one is written.</summary>
    private const int CheckpointSpacing = 4;

    private long _lastCheckpointBytes;
    private long _checkpointCount;
    private long _checkpointStart = -1;
    private LogAddress _checkpointStartAddress;

    /// <summary>Writes a checkpoint when due, then truncates the log at the newest checkpoint that is safe.</summary>
    private async Task CheckpointAndTruncateAsync(bool progressed, CancellationToken cancellationToken)
    {
        bool due;
        lock (_sync)
        {
            var spacing = Math.Max(_options.Storage.CheckpointEvery, CheckpointSpacing * Interlocked.Read(ref _lastCheckpointBytes));
            due = _logBytes - _logBytesAtCheckpoint >= spacing || (progressed && _checkpoints.Count == 0);
        }

        if (due)
        {
            var outcome = await WriteCheckpointAsync(cancellationToken);
            if (!outcome.IsSuccess)
            {
                return;
            }
        }

        LogAddress target;
        lock (_sync)
        {
            // The oldest frame that still holds bytes not in Tier 2 bounds the truncation.
            LogAddress? bound = null;
            foreach (var segment in _byId.Values)
            {
                if (segment.DurableStorageLength < segment.Length && segment.Index.AddressAtOrAfter(segment.DurableStorageLength) is { } address
                    && (bound is null || address < bound))
                {
                    bound = address;
                }
            }

            var safe = _checkpoints.FindLastIndex(c => bound is null || c <= bound);
            if (safe < 0 || _checkpoints[safe] <= _truncatedAt)
            {
                return;
            }

            target = _checkpoints[safe];
        }

        await _log.TruncateAsync(target, cancellationToken);
        lock (_sync)
        {
            _truncatedAt = target;
            _checkpoints.RemoveAll(c => c < target);
            foreach (var segment in _byId.Values)
            {
                segment.Index.TruncateBeforeAddress(target);
            }
        }

        _cache.RemoveBefore(Id, target);
        _logger.LogDebug("Container {Container} truncated its log at {Address}.", Id, target);
    }

    private async Task<OperationOutcome> WriteCheckpointAsync(CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
            {
                return unavailable;
            }

            // The snapshot is taken here, and its frame takes its place in the log now: whatever is accepted after
            // this lock goes to later frames. Serializing it (a second for a million chunks) happens off the lock.
            SealCurrent();
            var started = Stopwatch.GetTimestamp();
            var snapshot = BuildCheckpoint();
            // Unique across owners: a later owner never takes the id of a checkpoint an earlier one left half written.
            var checkpointId = (_log.Epoch << 32) | (uint)++_checkpointCount;
            var frame = new PendingFrame(new DataFrameBuilder(DataFrame.HeaderSize + DataFrame.TrailerSize))
            {
                CheckpointPages = Task.Run(() => Paginate(snapshot, checkpointId, started), CancellationToken.None),
            };
            frame.Operations.Add(new PendingOperation { Kind = PendingKind.CheckpointStart, Segment = SegmentMetadata.Container, Offset = checkpointId });
            frame.Operations.Add(new PendingOperation { Kind = PendingKind.Checkpoint, Segment = SegmentMetadata.Container, Offset = checkpointId, Callback = completion });
            _pending.AddLast(frame);
            _unwritten.Enqueue(frame);
            _logBytesAtCheckpoint = _logBytes;
        }

        _writeSignal.Release();
        return await completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Serializes a checkpoint into page frames (unsealed: the writer gives them their sequence numbers).</summary>
    private List<DataFrameBuilder> Paginate(ContainerCheckpoint snapshot, long checkpointId, long started)
    {
        var pageSize = _options.MaxFrameSize - DataFrame.HeaderSize - DataFrame.OperationHeaderSize - CheckpointPages.HeaderSize - DataFrame.TrailerSize;
        using var serialized = new PagedBuffer(pageSize);
        snapshot.WriteTo(serialized);
        var pages = serialized.Pages;
        var frames = new List<DataFrameBuilder>(pages.Count);
        for (var i = 0; i < pages.Count; i++)
        {
            var frame = new DataFrameBuilder(_options.MaxFrameSize);
            frame.AddCheckpointPage(checkpointId, i, pages.Count, pages[i].Span);
            frames.Add(frame);
        }

        Interlocked.Exchange(ref _lastCheckpointBytes, serialized.Length);
        var elapsed = Stopwatch.GetElapsedTime(started);
        _logger.Log(elapsed >= TimeSpan.FromMilliseconds(100) ? LogLevel.Information : LogLevel.Debug,
            "Container {Container} checkpoints {Bytes} bytes of metadata in {Pages} log frames (serialized in {Elapsed:F0} ms).",
            Id, serialized.Length, pages.Count, elapsed.TotalMilliseconds);
        return frames;
    }

    /// <summary>
    /// The accepted state: the effect of every operation in the log so far (container lock held). Writers idle for
    /// longer than <see cref="ContainerOptions.WriterExpiry"/> are forgotten here, in the live state and the checkpoint
    /// alike, so a container replayed from it holds exactly what this one holds.
    /// </summary>
    private ContainerCheckpoint BuildCheckpoint()
    {
        var segments = new List<CheckpointSegment>(_byName.Count);
        var cutoff = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)_options.WriterExpiry.TotalMilliseconds;
        var expired = 0;
        foreach (var s in _byName.Values)
        {
            expired += s.ExpireWriters(cutoff);
            segments.Add(new CheckpointSegment(s.Id, s.Name, s.CreatedAtUnixMs, s.PendingLength, s.PendingStartOffset, s.PendingSealed,
                s.StorageLength, [.. s.Chunks], s.AcceptedWriters()));
        }

        if (expired > 0)
        {
            _logger.LogInformation("Container {Container} forgot {Writers} writer(s) idle for more than {Expiry}.", Id, expired, _options.WriterExpiry);
        }

        return new ContainerCheckpoint(_nextSegmentId, segments);
    }

    /// <summary>The first page of a checkpoint is durable (container lock held): remember where it starts.</summary>
    private void OnCheckpointStartDurable(long checkpointId, LogAddress address)
    {
        _checkpointStart = checkpointId;
        _checkpointStartAddress = address;
    }

    /// <summary>The last page is durable (container lock held): the checkpoint's first frame becomes a truncation point.</summary>
    private void OnCheckpointDurable(long checkpointId)
    {
        if (_checkpointStart == checkpointId)
        {
            _checkpoints.Add(_checkpointStartAddress);
        }
    }

    /// <summary>Replays a checkpoint: the container's state becomes exactly the checkpoint's.</summary>
    private void ApplyCheckpoint(ContainerCheckpoint checkpoint, LogAddress address)
    {
        var kept = new HashSet<long>();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var c in checkpoint.Segments)
        {
            if (!_byId.TryGetValue(c.Id, out var segment))
            {
                segment = new SegmentMetadata(c.Id, c.Name, c.CreatedAtUnixMs) { IsDurable = true };
                _byId[c.Id] = segment;
            }

            _byName[c.Name] = segment;
            kept.Add(c.Id);
            segment.Length = segment.PendingLength = c.Length;
            segment.StartOffset = segment.PendingStartOffset = c.StartOffset;
            segment.IsSealed = segment.PendingSealed = c.Sealed;
            segment.StorageLength = segment.DurableStorageLength = c.StorageLength;
            segment.Chunks.Clear();
            segment.Chunks.AddRange(c.Chunks);
            segment.RestoreWriters(c.Writers, now);
            segment.Index.TruncateBefore(c.StartOffset);
        }

        foreach (var id in _byId.Keys.Where(id => !kept.Contains(id)).ToList())
        {
            var gone = _byId[id];
            _byId.Remove(id);
            if (_byName.TryGetValue(gone.Name, out var named) && named == gone)
            {
                _byName.Remove(gone.Name);
            }
        }

        _nextSegmentId = Math.Max(_nextSegmentId, checkpoint.NextSegmentId);
        _checkpoints.Add(address);
    }

    /// <summary>After recovery: the budget counter and flush ages start from the recovered state.</summary>
    private void ResetStorageState()
    {
        long unflushed = 0;
        var now = Stopwatch.GetTimestamp();
        foreach (var segment in _byId.Values)
        {
            var pending = segment.Length - segment.StorageLength;
            unflushed += pending;
            segment.UnflushedSince = pending > 0 ? now : 0;
        }

        _unflushedBytes = unflushed;
        _logBytesAtCheckpoint = 0;
        _logBytes = _checkpoints.Count == 0 ? 0 : _options.Storage.CheckpointEvery; // a fresh owner checkpoints soon
    }
}
