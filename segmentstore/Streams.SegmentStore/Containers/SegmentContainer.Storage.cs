using System.Buffers;
using System.Collections.Concurrent;
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
/// never names a chunk that is not there.
/// </para>
/// <para>
/// Fencing in Tier 2. Chunk names carry the epoch of the log's owner that wrote them (a new owner's epoch is higher),
/// so a zombie owner can never overwrite a chunk the current owner recorded, and the orphan sweep deletes only chunks
/// of lower epochs that nothing references: never a newer owner's, whose records a stale view cannot know. And before
/// every delete the owner confirms with the metadata store that the log is still its own: an owner cut off from the
/// store (partitioned, or frozen and woken) deletes nothing.
/// </para>
/// <para>
/// Outages. A Tier 2 failure is retried with exponential back-off; the log keeps taking appends until the container's
/// Tier 1 budget (bytes not in Tier 2) is full, then appends wait (slow acks), and are refused with "retry" only after
/// <see cref="StorageWriterOptions.BudgetTimeout"/>.
/// </para>
/// </summary>
public sealed partial class SegmentContainer
{
    private readonly IChunkStorage? _tier2;
    private readonly FrameCache? _chunkCache;
    private readonly ConcurrentDictionary<FrameKey, Task> _chunkFetches = new(); // Tier 2 reads in flight, by chunk
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
        string.Create(CultureInfo.InvariantCulture, $"{ChunkPrefix(Id, segmentId)}{start:D19}.e{_log.Epoch}");

    /// <summary>The epoch of the owner that wrote a chunk; 0 for chunks named before epochs were part of the name.</summary>
    internal static long EpochOf(string chunkName)
    {
        var dot = chunkName.LastIndexOf('.');
        return dot >= 0 && chunkName.Length > dot + 2 && chunkName[dot + 1] == 'e'
            && long.TryParse(chunkName.AsSpan(dot + 2), NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)
            ? epoch
            : 0;
    }

    /// <summary>Deletes a chunk after confirming this container still owns its log (which fails the container if not).</summary>
    private async Task DeleteChunkAsync(string name, CancellationToken cancellationToken)
    {
        await _log.CheckOwnershipAsync(cancellationToken);
        await _tier2!.DeleteAsync(name, cancellationToken);
    }

    // ---- The loop ----------------------------------------------------------------------------------

    private async Task StorageLoopAsync()
    {
        // Background work: its spans (one per chunk flushed) are roots, not children of whatever started the container.
        Activity.Current = null;
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
        using var activity = SegmentStoreTracing.Source.StartActivity("FlushChunk");
        activity?.SetTag("streams.container", Id).SetTag("streams.segment", segment.Name).SetTag("streams.offset", from).SetTag("streams.bytes", count);
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
                await DeleteChunkAsync(chunk.Name, cancellationToken);
            }
        }
        catch (Exception e) when (activity is not null && e is not OperationCanceledException)
        {
            activity.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
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
                await DeleteChunkAsync(chunk.Name, cancellationToken);
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
                await DeleteChunkAsync(chunk.Name, cancellationToken);
            }

            // Chunks whose flush record never became durable (a crash between the write and the record).
            await foreach (var orphan in _tier2!.ListAsync(ChunkPrefix(Id, segmentId), cancellationToken))
            {
                await DeleteChunkAsync(orphan, cancellationToken);
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
    /// Deletes this container's chunks that no segment references and that an earlier owner wrote: it crashed (or was
    /// fenced) before recording them. Chunks of this owner's epoch are kept (only this loop writes them, and it is
    /// here), and so are those of higher epochs: a newer owner's, which this owner cannot know about. Returns how many
    /// were deleted.
    /// </summary>
    internal async Task<int> SweepOrphansAsync(CancellationToken cancellationToken)
    {
        HashSet<string> referenced;
        lock (_sync)
        {
            referenced = [.. _byId.Values.SelectMany(s => s.Chunks).Select(c => c.Name)];
        }

        // Streamed a page at a time: a container with millions of chunks is swept without listing them all first.
        var deleted = 0;
        await foreach (var name in _tier2!.ListAsync(string.Create(CultureInfo.InvariantCulture, $"containers/{Id}/"), cancellationToken))
        {
            if (!referenced.Contains(name) && EpochOf(name) < _log.Epoch)
            {
                await DeleteChunkAsync(name, cancellationToken);
                deleted++;
            }
        }

        if (deleted > 0)
        {
            _logger.LogInformation("Container {Container} deleted {Count} unreferenced chunks from Tier 2.", Id, deleted);
        }

        return deleted;
    }

}
