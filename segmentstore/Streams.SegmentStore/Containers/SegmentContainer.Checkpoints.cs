using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// Checkpoints and log truncation behind Tier 2.
/// <para>
/// Truncation. The log is truncated only at a <see cref="OperationType.Checkpoint"/> record (the whole container
/// metadata, including chunk lists and writers' event numbers), and only at a checkpoint older than every frame that
/// still holds bytes not in Tier 2. Recovery then starts at that checkpoint and loses nothing: earlier bytes are in
/// Tier 2, later ones are replayed.
/// </para>
/// </summary>
internal sealed partial class SegmentContainer
{
    /// <summary>Writes a checkpoint when due, then truncates the log at the newest checkpoint that is safe.</summary>
    private async Task CheckpointAndTruncateAsync(bool progressed, CancellationToken cancellationToken)
    {
        bool due;
        lock (_sync)
        {
            due = _logBytes - _logBytesAtCheckpoint >= _options.Storage.CheckpointEvery || (progressed && _checkpoints.Count == 0);
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

            // A checkpoint opens its frame: recovery may start at that frame, and must find nothing before it.
            SealCurrent();
            var body = BuildCheckpoint().Serialize();
            var frame = FrameFor(body.Length);
            frame.Builder.AddBody(OperationType.Checkpoint, body);
            frame.Operations.Add(new PendingOperation { Kind = PendingKind.Checkpoint, Segment = SegmentMetadata.Container, Callback = completion });
            _logBytesAtCheckpoint = _logBytes;
        }

        _writeSignal.Release();
        return await completion.Task.WaitAsync(cancellationToken);
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
