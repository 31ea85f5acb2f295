using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;
using Streams.Tier2;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// The storage writer: moves durable segment data from the container's log (Tier 1) to Tier 2, then truncates the log.
/// <para>
/// Why it is built this way. A segment's bytes not yet in Tier 2 are written as one immutable chunk per flush (by
/// size, by age, or at once when the segment is sealed); only after the chunk is whole in Tier 2 is a
/// <see cref="OperationType.StorageFlushed"/> record written to the log, so the chunk list that recovery rebuilds
/// never names a chunk that is not there. Chunk names carry this owner's random tag, so a zombie owner can never
/// overwrite a chunk the current owner recorded.
/// </para>
/// <para>
/// Truncation. The log is truncated only at a <see cref="OperationType.Checkpoint"/> record (the whole container
/// metadata, including chunk lists and writers' event numbers), and only at a checkpoint older than every frame that
/// still holds bytes not in Tier 2. Recovery then starts at that checkpoint and loses nothing: earlier bytes are in
/// Tier 2, later ones are replayed.
/// </para>
/// <para>
/// Outages. A Tier 2 failure is retried with exponential back-off; the log keeps taking appends until the container's
/// Tier 1 budget (bytes not in Tier 2) is full, then appends wait (slow acks), and are refused with "retry" only after
/// <see cref="StorageWriterOptions.BudgetTimeout"/>.
/// </para>
/// </summary>
internal sealed partial class SegmentContainer
{
    private readonly IChunkStorage? _tier2;
    private readonly FrameCache? _chunkCache;
    private readonly string _owner = Guid.NewGuid().ToString("N")[..12];
    private readonly SemaphoreSlim _storageSignal = new(0, int.MaxValue);
    private readonly List<LogAddress> _checkpoints = [];
    private readonly Queue<(long SegmentId, List<ChunkInfo> Chunks)> _chunksToDelete = new();
    private Task? _storageLoop;
    private long _unflushedBytes;
    private long _logBytes;
    private long _logBytesAtCheckpoint;
    private long _budgetFullSince;
    private long _budgetWarnedAt;
    private LogAddress _truncatedAt = new(-1, -1);
    private volatile bool _tier2Failing;
    private long _nextSweep;

    /// <summary>Accepted bytes not yet durably in Tier 2.</summary>
    public long UnflushedBytes => Interlocked.Read(ref _unflushedBytes);

    /// <summary>Whether the last Tier 2 request failed (the storage writer is retrying).</summary>
    public bool Tier2Failing => _tier2Failing;

    /// <summary>Where the log was last truncated (nothing before it is in Tier 1 any more).</summary>
    public LogAddress TruncatedAt
    {
        get
        {
            lock (_sync)
            {
                return _truncatedAt;
            }
        }
    }

    /// <summary>True when the Tier 1 budget is full (container lock held).</summary>
    private bool OverBudget => _tier2 is not null && _unflushedBytes >= _options.Storage.Tier1Budget;

    /// <summary>Wakes the storage writer (a seal, truncation or deletion to reflect in Tier 2).</summary>
    private void SignalStorage()
    {
        if (_tier2 is not null)
        {
            _storageSignal.Release();
        }
    }

    /// <summary>
    /// Checks the Tier 1 budget for an append (container lock held): null to go ahead, else whether to wait
    /// (<see cref="AppendAcceptance.NoCapacity"/>) or the refusal once the budget stayed full past its timeout.
    /// </summary>
    private OperationOutcome? CheckBudget(out bool wait)
    {
        wait = false;
        if (!OverBudget)
        {
            _budgetFullSince = 0;
            return null;
        }

        var now = Stopwatch.GetTimestamp();
        if (_budgetFullSince == 0)
        {
            _budgetFullSince = now;
        }

        if (_budgetWarnedAt == 0 || Stopwatch.GetElapsedTime(_budgetWarnedAt, now) >= TimeSpan.FromSeconds(30))
        {
            _budgetWarnedAt = now;
            _logger.LogWarning("Container {Container}: {Bytes} bytes are not in Tier 2 yet, the Tier 1 budget; appends wait for Tier 2 ({Tier2}).",
                Id, _unflushedBytes, _tier2!.Location);
        }

        var timeout = _options.Storage.BudgetTimeout;
        if (Stopwatch.GetElapsedTime(_budgetFullSince, now) < timeout)
        {
            wait = true;
            return null;
        }

        return OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable,
            $"Container {Id} has held {_options.Storage.Tier1Budget / (1024 * 1024)} MiB not yet in Tier 2 ({_tier2!.Location}) for more than " +
            $"{timeout.TotalSeconds:F0} s (is Tier 2 down?); retry later.");
    }

    private void OnSegmentDeleted(SegmentMetadata segment)
    {
        if (_tier2 is not null)
        {
            _chunksToDelete.Enqueue((segment.Id, [.. segment.Chunks]));
            SignalStorage();
        }
    }

    /// <summary>A flush record is durable (container lock held).</summary>
    private void OnFlushDurable(SegmentMetadata segment, long storageLength, int chunkLength)
    {
        segment.DurableStorageLength = storageLength;
        _unflushedBytes -= chunkLength;
        segment.UnflushedSince = storageLength >= segment.Length ? 0 : Stopwatch.GetTimestamp();
        SegmentStoreMetrics.Tier2FlushedBytes.Add(chunkLength);
    }

    private static string ChunkPrefix(int container, long segmentId) =>
        string.Create(CultureInfo.InvariantCulture, $"containers/{container}/segments/{segmentId}/");

    private string ChunkName(long segmentId, long start) =>
        string.Create(CultureInfo.InvariantCulture, $"{ChunkPrefix(Id, segmentId)}{start:D19}.{_owner}");

    // ---- The loop ----------------------------------------------------------------------------------

    private async Task StorageLoopAsync()
    {
        var storage = _options.Storage;
        var delay = storage.MinRetryDelay;
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(storage.FlushAge.TotalMilliseconds / 4, 10, 1000));
        while (!_stop.IsCancellationRequested && _state == ContainerState.Running)
        {
            try
            {
                await _storageSignal.WaitAsync(poll, _stop.Token);
                var progressed = await FlushAsync(_stop.Token);
                progressed |= await DeleteChunksAsync(_stop.Token);
                await CheckpointAndTruncateAsync(progressed, _stop.Token);
                if (Stopwatch.GetTimestamp() >= _nextSweep)
                {
                    await SweepOrphansAsync(_stop.Token);
                    _nextSweep = Stopwatch.GetTimestamp() + (long)(storage.OrphanSweepInterval.TotalSeconds * Stopwatch.Frequency);
                }

                if (_tier2Failing)
                {
                    _tier2Failing = false;
                    _logger.LogInformation("Container {Container}: Tier 2 ({Tier2}) works again.", Id, _tier2!.Location);
                }

                delay = storage.MinRetryDelay;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (_state == ContainerState.Running)
            {
                SegmentStoreMetrics.Tier2Errors.Add(1);
                if (!_tier2Failing)
                {
                    _tier2Failing = true;
                    _logger.LogWarning(e, "Container {Container}: moving data to Tier 2 ({Tier2}) failed; retrying with back-off.", Id, _tier2!.Location);
                }

                try
                {
                    await Task.Delay(delay, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, storage.MaxRetryDelay.Ticks));
            }
            catch (Exception)
            {
                break; // The container failed or stopped; its owner restarts it, which starts a new storage writer.
            }
        }
    }

    /// <summary>Flushes every segment that is due. Returns whether anything moved.</summary>
    private async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        var storage = _options.Storage;
        List<(SegmentMetadata Segment, bool All, long Target)> due = [];
        lock (_sync)
        {
            var pressure = _unflushedBytes >= storage.Tier1Budget / 2;
            foreach (var segment in _byId.Values)
            {
                var unflushed = segment.Length - segment.StorageLength;
                if (unflushed <= 0 || segment.PendingDeleted)
                {
                    continue;
                }

                // Sealed, old or under pressure: everything goes. Otherwise only whole chunks of the flush size.
                var all = segment.IsSealed || pressure || Stopwatch.GetElapsedTime(segment.UnflushedSince) >= storage.FlushAge;
                if (all || unflushed >= storage.FlushSize)
                {
                    due.Add((segment, all, segment.Length));
                }
            }
        }

        // Each segment up to its length at the start of the round: a busy segment does not hold the others back.
        foreach (var (segment, all, target) in due)
        {
            while (!segment.IsDeleted && target - segment.StorageLength is var unflushed && unflushed > 0 && (all || unflushed >= storage.FlushSize))
            {
                var before = segment.StorageLength;
                await FlushChunkAsync(segment, all ? storage.MaxChunkSize : storage.FlushSize, cancellationToken);
                if (segment.StorageLength == before)
                {
                    break; // No progress (truncated or deleted meanwhile): the next round looks again.
                }
            }
        }

        return due.Count > 0;
    }

    /// <summary>Writes the next chunk of a segment to Tier 2 and records it in the log.</summary>
    private async Task FlushChunkAsync(SegmentMetadata segment, int maxChunk, CancellationToken cancellationToken)
    {
        long from, length, start;
        lock (_sync)
        {
            from = segment.StorageLength;
            length = segment.Length;
            start = segment.StartOffset;
        }

        if (start > from)
        {
            // Truncated before it reached Tier 2: record the range as moved without writing it.
            var gap = (int)Math.Min(Math.Min(start, length) - from, int.MaxValue);
            await RecordFlushAsync(segment, new ChunkInfo("", from, gap, 0), cancellationToken);
            return;
        }

        var count = (int)Math.Min(length - from, maxChunk);
        var buffer = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            var filled = 0;
            while (filled < count)
            {
                using var read = await ReadDataAsync(segment, from + filled, count - filled, length, start, false, tier1Only: true, cancellationToken);
                if (read.Status != Contracts.SegmentStore.ReadStatus.Ok || read.Data.IsEmpty)
                {
                    return; // Truncated meanwhile: the next round records the gap.
                }

                read.Data.CopyTo(buffer.AsSpan(filled));
                filled += (int)read.Data.Length;
            }

            var chunk = new ChunkInfo(ChunkName(segment.Id, from), from, count, Crc32C.Compute(buffer.AsSpan(0, count)));
            await _tier2!.WriteAsync(chunk.Name, buffer.AsMemory(0, count), cancellationToken);
            SegmentStoreMetrics.Tier2WrittenBytes.Add(count);
            var outcome = await RecordFlushAsync(segment, chunk, cancellationToken);
            if (!outcome.IsSuccess && outcome.Status == OutcomeStatus.NoSuchSegment)
            {
                await _tier2.DeleteAsync(chunk.Name, cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Records a chunk in the log; completes when the record is durable.</summary>
    private async Task<OperationOutcome> RecordFlushAsync(SegmentMetadata segment, ChunkInfo chunk, CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
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

            var body = StorageRecords.Flushed(segment.Id, chunk);
            var frame = FrameFor(body.Length);
            frame.Builder.AddBody(OperationType.StorageFlushed, body);
            frame.Operations.Add(new PendingOperation { Kind = PendingKind.StorageFlushed, Segment = segment, Offset = chunk.End, Length = chunk.Length, Callback = completion });
            segment.StorageLength = chunk.End;
            if (chunk.Name.Length > 0)
            {
                segment.Chunks.Add(chunk);
            }
        }

        _writeSignal.Release();
        return await completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Deletes chunks below segments' start offsets and the chunks of deleted segments. Returns whether any went.</summary>
    private async Task<bool> DeleteChunksAsync(CancellationToken cancellationToken)
    {
        var deleted = false;
        List<(SegmentMetadata Segment, List<ChunkInfo> Chunks)> truncated = [];
        (long SegmentId, List<ChunkInfo> Chunks)[] segments;
        lock (_sync)
        {
            foreach (var segment in _byId.Values)
            {
                var start = segment.StartOffset;
                if (segment.Chunks.Count > 0 && segment.Chunks[0].End <= start)
                {
                    truncated.Add((segment, segment.Chunks.TakeWhile(c => c.End <= start).ToList()));
                }
            }

            segments = [.. _chunksToDelete];
        }

        foreach (var (segment, chunks) in truncated)
        {
            foreach (var chunk in chunks)
            {
                await _tier2!.DeleteAsync(chunk.Name, cancellationToken);
            }

            lock (_sync)
            {
                segment.Chunks.RemoveRange(0, chunks.Count);
            }

            deleted = true;
        }

        foreach (var (segmentId, chunks) in segments)
        {
            foreach (var chunk in chunks)
            {
                await _tier2!.DeleteAsync(chunk.Name, cancellationToken);
            }

            // Chunks whose flush record never became durable (a crash between the write and the record).
            foreach (var orphan in await _tier2!.ListAsync(ChunkPrefix(Id, segmentId), cancellationToken))
            {
                await _tier2.DeleteAsync(orphan, cancellationToken);
            }

            lock (_sync)
            {
                _chunksToDelete.Dequeue();
            }

            deleted = true;
        }

        return deleted;
    }

    /// <summary>
    /// Deletes this container's chunks that no segment references: written by an owner that crashed (or was fenced)
    /// before recording them. Chunks with this owner's tag are kept: only this loop writes them, and it is here.
    /// Returns how many were deleted.
    /// </summary>
    internal async Task<int> SweepOrphansAsync(CancellationToken cancellationToken)
    {
        var names = await _tier2!.ListAsync(string.Create(CultureInfo.InvariantCulture, $"containers/{Id}/"), cancellationToken);
        HashSet<string> referenced;
        lock (_sync)
        {
            referenced = [.. _byId.Values.SelectMany(s => s.Chunks).Select(c => c.Name)];
        }

        var deleted = 0;
        foreach (var name in names)
        {
            if (!referenced.Contains(name) && !name.EndsWith("." + _owner, StringComparison.Ordinal))
            {
                await _tier2.DeleteAsync(name, cancellationToken);
                deleted++;
            }
        }

        if (deleted > 0)
        {
            _logger.LogInformation("Container {Container} deleted {Count} unreferenced chunks from Tier 2.", Id, deleted);
        }

        return deleted;
    }

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

    /// <summary>The accepted state: the effect of every operation in the log so far (container lock held).</summary>
    private ContainerCheckpoint BuildCheckpoint()
    {
        var segments = new List<CheckpointSegment>(_byName.Count);
        foreach (var s in _byName.Values)
        {
            segments.Add(new CheckpointSegment(s.Id, s.Name, s.CreatedAtUnixMs, s.PendingLength, s.PendingStartOffset, s.PendingSealed,
                s.StorageLength, [.. s.Chunks], s.AcceptedWriters()));
        }

        return new ContainerCheckpoint(_nextSegmentId, segments);
    }

    /// <summary>Replays a checkpoint: the container's state becomes exactly the checkpoint's.</summary>
    private void ApplyCheckpoint(ContainerCheckpoint checkpoint, LogAddress address)
    {
        var kept = new HashSet<long>();
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
            segment.RestoreWriters(c.Writers);
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

    // ---- Reads from Tier 2 ---------------------------------------------------------------------------

    /// <summary>Returns the chunk's bytes with one reference taken (release it), from the chunk cache or Tier 2.</summary>
    private async ValueTask<CachedFrame> AcquireChunkAsync(long segmentId, ChunkInfo chunk, CancellationToken cancellationToken)
    {
        var key = new FrameKey(Id, new LogAddress(segmentId, chunk.Start));
        if (_chunkCache!.TryAcquire(key) is { } cached)
        {
            return cached;
        }

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

        return _chunkCache.AddAndAcquire(key, owner, chunk.Length);
    }
}
