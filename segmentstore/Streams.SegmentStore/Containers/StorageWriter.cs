using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.SegmentStore.Logs;
using Streams.Tier2;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// The storage writer (<see cref="IStorageWriter"/>): moves durable segment data from the container's log (Tier 1) to
/// Tier 2, checkpoints the metadata, then truncates the log.
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
/// Truncation. The log is truncated only at a checkpoint (the whole container metadata, including chunk lists and
/// writers' event numbers), and only at a checkpoint older than every frame that still holds bytes not in Tier 2.
/// Recovery then starts at that checkpoint and loses nothing: earlier bytes are in Tier 2, later ones are replayed.
/// </para>
/// <para>
/// Checkpoint size. A checkpoint grows with the metadata (a container with a million chunks and a million writers has
/// one of about 100 MiB), so it is written as pages, one per frame (<see cref="CheckpointPages"/>), never as one record
/// that the log could refuse. The snapshot is taken under the metadata's lock, where its frame takes its turn in the
/// log; it is serialized off the lock, and the operation log writes its pages as consecutive records in that turn. A
/// checkpoint becomes a truncation point once all its pages are durable. The next one waits until the log has grown by
/// <see cref="CheckpointSpacing"/> times the last one's size (at least CheckpointEvery), so checkpoints never take more
/// than a fraction of the log's bandwidth however large they get.
/// </para>
/// <para>
/// Outages. A Tier 2 failure is retried with exponential back-off; the log keeps taking appends until the container's
/// <see cref="Tier1Budget"/> is full, then appends wait (slow acks), and are refused with "retry" only after
/// <see cref="StorageWriterOptions.BudgetTimeout"/>.
/// </para>
/// <para>
/// State and lock. This class owns the budget, the truncation points (under its own lock), the queue of deleted
/// segments' chunks (a concurrent queue) and its loop. It calls the metadata, the read index and the operation log only
/// with no lock of its own held.
/// </para>
/// </summary>
internal sealed class StorageWriter : IStorageWriter
{
    /// <summary>The log grows by at least this many times the last checkpoint's size before the next one is written.</summary>
    private const int CheckpointSpacing = 4;

    private readonly int _containerId;
    private readonly IOperationLog _log;
    private readonly IContainerMetadata _metadata;
    private readonly IReadIndex _readIndex;
    private readonly IChunkStorage? _tier2;
    private readonly Tier1Budget _budget;
    private readonly ContainerOptions _options;
    private readonly ILogger _logger;
    private readonly object _sync = new();
    private readonly List<LogAddress> _checkpoints = []; // durable checkpoints after the truncation point, oldest first
    private readonly ConcurrentQueue<DeletedSegment> _chunksToDelete = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private long _loggedAtCheckpoint;
    private long _lastCheckpointBytes;
    private long _checkpointCount;
    private long _nextSweep;
    private volatile bool _tier2Failing;

    public StorageWriter(
        int containerId, IOperationLog log, IContainerMetadata metadata, IReadIndex readIndex, IChunkStorage? tier2, Tier1Budget budget,
        ContainerOptions options, ILogger logger)
    {
        _containerId = containerId;
        _log = log;
        _metadata = metadata;
        _readIndex = readIndex;
        _tier2 = tier2;
        _budget = budget;
        _options = options;
        _logger = logger;
    }

    public long UnflushedBytes => _budget.Bytes;

    public bool OverBudget => _budget.IsFull;

    public bool Tier2Failing => _tier2Failing;

    public void OnRecovered(IReadOnlyList<LogAddress> checkpoints, IReadOnlyList<DeletedSegment> deleted, long unflushedBytes)
    {
        lock (_sync)
        {
            _checkpoints.AddRange(checkpoints);
            _loggedAtCheckpoint = _checkpoints.Count == 0 ? 0 : -_options.Storage.CheckpointEvery; // a fresh owner checkpoints soon
        }

        _budget.Reset(unflushedBytes);
        OnDurable(false, deleted);
    }

    public void Start()
    {
        if (_tier2 is not null)
        {
            _loop = Task.Run(LoopAsync, CancellationToken.None);
        }
    }

    public void OnDurable(bool changed, IReadOnlyList<DeletedSegment> deleted)
    {
        if (_tier2 is null)
        {
            return;
        }

        foreach (var segment in deleted)
        {
            _chunksToDelete.Enqueue(segment);
        }

        if (changed || deleted.Count > 0)
        {
            _signal.Release();
        }
    }

    public void OnCheckpointDurable(LogAddress address)
    {
        lock (_sync)
        {
            _checkpoints.Add(address);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
        _signal.Dispose();
    }

    private static string ChunkPrefix(int container, long segmentId) =>
        string.Create(CultureInfo.InvariantCulture, $"containers/{container}/segments/{segmentId}/");

    private string ChunkName(long segmentId, long start) =>
        string.Create(CultureInfo.InvariantCulture, $"{ChunkPrefix(_containerId, segmentId)}{start:D19}.e{_log.Epoch}");

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

    private async Task LoopAsync()
    {
        // Background work: its spans (one per chunk flushed) are roots, not children of whatever started the container.
        Activity.Current = null;
        var storage = _options.Storage;
        var delay = storage.MinRetryDelay;
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(storage.FlushAge.TotalMilliseconds / 4, 10, 1000));
        while (!_stop.IsCancellationRequested && _log.State == ContainerState.Running)
        {
            try
            {
                await _signal.WaitAsync(poll, _stop.Token);
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
                    _logger.LogInformation("Container {Container}: Tier 2 ({Tier2}) works again.", _containerId, _tier2!.Location);
                }

                delay = storage.MinRetryDelay;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (_log.State == ContainerState.Running)
            {
                SegmentStoreMetrics.Tier2Errors.Add(1);
                if (!_tier2Failing)
                {
                    _tier2Failing = true;
                    _logger.LogWarning(e, "Container {Container}: moving data to Tier 2 ({Tier2}) failed; retrying with back-off.", _containerId, _tier2!.Location);
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

    // ---- Flushes -----------------------------------------------------------------------------------

    /// <summary>Flushes every segment that is due. Returns whether anything moved.</summary>
    private async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        var storage = _options.Storage;
        List<(SegmentMetadata Segment, bool All, long Target)> due = [];
        _metadata.ForEachSegment((due, storage, pressure: _budget.UnderPressure), static (segment, state) =>
        {
            var unflushed = segment.Length - segment.StorageLength;
            if (unflushed <= 0 || segment.PendingDeleted)
            {
                return;
            }

            // Sealed, old or under pressure: everything goes. Otherwise only whole chunks of the flush size.
            var all = segment.IsSealed || state.pressure || Stopwatch.GetElapsedTime(segment.UnflushedSince) >= state.storage.FlushAge;
            if (all || unflushed >= state.storage.FlushSize)
            {
                state.due.Add((segment, all, segment.Length));
            }
        });

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
        var (from, length, start) = _metadata.StorageView(segment);
        if (start > from)
        {
            // Truncated before it reached Tier 2: record the range as moved without writing it.
            var gap = (int)Math.Min(Math.Min(start, length) - from, int.MaxValue);
            await RecordFlushAsync(segment, new ChunkInfo("", from, gap, 0), cancellationToken);
            return;
        }

        var count = (int)Math.Min(length - from, maxChunk);
        using var activity = SegmentStoreTracing.Source.StartActivity("FlushChunk");
        activity?.SetTag("streams.container", _containerId).SetTag("streams.segment", segment.Name).SetTag("streams.offset", from).SetTag("streams.bytes", count);
        var buffer = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            var filled = 0;
            while (filled < count)
            {
                using var read = await _readIndex.ReadFromLogAsync(segment, from + filled, count - filled, length, start, cancellationToken);
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
        return _metadata.AcceptFlush(segment, chunk, completion) is { } refused ? refused : await completion.Task.WaitAsync(cancellationToken);
    }

    // ---- Deletes -----------------------------------------------------------------------------------

    /// <summary>Deletes chunks below segments' start offsets and the chunks of deleted segments. Returns whether any went.</summary>
    private async Task<bool> DeleteChunksAsync(CancellationToken cancellationToken)
    {
        var deleted = false;
        List<(SegmentMetadata Segment, List<ChunkInfo> Chunks)> truncated = [];
        _metadata.ForEachSegment(truncated, static (segment, list) =>
        {
            var start = segment.StartOffset;
            if (segment.Chunks.Count > 0 && segment.Chunks[0].End <= start)
            {
                list.Add((segment, segment.Chunks.TakeWhile(c => c.End <= start).ToList()));
            }
        });
        var segments = _chunksToDelete.ToArray();

        foreach (var (segment, chunks) in truncated)
        {
            foreach (var chunk in chunks)
            {
                await DeleteChunkAsync(chunk.Name, cancellationToken);
            }

            _metadata.RemoveChunks(segment, chunks.Count);
            deleted = true;
        }

        foreach (var (segmentId, chunks) in segments)
        {
            foreach (var chunk in chunks)
            {
                await DeleteChunkAsync(chunk.Name, cancellationToken);
            }

            // Chunks whose flush record never became durable (a crash between the write and the record).
            await foreach (var orphan in _tier2!.ListAsync(ChunkPrefix(_containerId, segmentId), cancellationToken))
            {
                await DeleteChunkAsync(orphan, cancellationToken);
            }

            _chunksToDelete.TryDequeue(out _);
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
    public async Task<int> SweepOrphansAsync(CancellationToken cancellationToken = default)
    {
        HashSet<string> referenced = [];
        _metadata.ForEachSegment(referenced, static (segment, names) =>
        {
            foreach (var chunk in segment.Chunks)
            {
                names.Add(chunk.Name);
            }
        });

        // Streamed a page at a time: a container with millions of chunks is swept without listing them all first.
        var deleted = 0;
        await foreach (var name in _tier2!.ListAsync(string.Create(CultureInfo.InvariantCulture, $"containers/{_containerId}/"), cancellationToken))
        {
            if (!referenced.Contains(name) && EpochOf(name) < _log.Epoch)
            {
                await DeleteChunkAsync(name, cancellationToken);
                deleted++;
            }
        }

        if (deleted > 0)
        {
            _logger.LogInformation("Container {Container} deleted {Count} unreferenced chunks from Tier 2.", _containerId, deleted);
        }

        return deleted;
    }

    // ---- Checkpoints and truncation ----------------------------------------------------------------

    /// <summary>Writes a checkpoint when due, then truncates the log at the newest checkpoint that is safe.</summary>
    private async Task CheckpointAndTruncateAsync(bool progressed, CancellationToken cancellationToken)
    {
        bool due;
        lock (_sync)
        {
            var spacing = Math.Max(_options.Storage.CheckpointEvery, CheckpointSpacing * Interlocked.Read(ref _lastCheckpointBytes));
            due = _log.LoggedBytes - _loggedAtCheckpoint >= spacing || (progressed && _checkpoints.Count == 0);
        }

        if (due && !(await WriteCheckpointAsync(cancellationToken)).IsSuccess)
        {
            return;
        }

        // The oldest frame that still holds bytes not in Tier 2 bounds the truncation.
        var bound = new StrongBox<LogAddress?>();
        _metadata.ForEachSegment(bound, static (segment, oldest) =>
        {
            if (segment.DurableStorageLength < segment.Length && segment.Index.AddressAtOrAfter(segment.DurableStorageLength) is { } address
                && (oldest.Value is null || address < oldest.Value))
            {
                oldest.Value = address;
            }
        });

        var truncatedAt = _log.TruncatedAt;
        LogAddress target;
        lock (_sync)
        {
            var safe = _checkpoints.FindLastIndex(c => bound.Value is null || c <= bound.Value);
            if (safe < 0 || _checkpoints[safe] <= truncatedAt)
            {
                return;
            }

            target = _checkpoints[safe];
        }

        await _log.TruncateAsync(target, cancellationToken);
        lock (_sync)
        {
            _checkpoints.RemoveAll(c => c < target);
        }

        _readIndex.OnLogTruncated(target);
        _logger.LogDebug("Container {Container} truncated its log at {Address}.", _containerId, target);
    }

    private async Task<OperationOutcome> WriteCheckpointAsync(CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        var started = Stopwatch.GetTimestamp();
        // Unique across owners: a later owner never takes the id of a checkpoint an earlier one left half written.
        var checkpointId = (_log.Epoch << 32) | (uint)++_checkpointCount;
        if (_metadata.AcceptCheckpoint(checkpointId, snapshot => Paginate(snapshot, checkpointId, started), completion) is { } refused)
        {
            return refused;
        }

        lock (_sync)
        {
            _loggedAtCheckpoint = _log.LoggedBytes;
        }

        return await completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Serializes a checkpoint into page frames (unsealed: the operation log gives them their sequence numbers).</summary>
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
            _containerId, serialized.Length, pages.Count, elapsed.TotalMilliseconds);
        return frames;
    }
}
