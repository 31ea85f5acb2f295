using System.Buffers;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Streams.Bookie.Storage;

/// <summary>
/// Garbage collection of the journal: moving its head past records no live ledger needs (whole files are deleted),
/// copying live records out of the oldest file when they would pin it, and forgetting deleted ledgers whose delete
/// record is gone.
/// <para>
/// Failure strategy: a pass that fails (a live record that cannot be read, an error from the journal) changes nothing
/// that was acknowledged; it is counted (streams.bookie.journal.gc.failures), logged, reported by
/// <see cref="CheckHealth"/> as degraded, and retried after a delay that doubles from the GC interval up to
/// <see cref="MaxGcBackoffFactor"/> times it, until a pass succeeds. The journal meanwhile only grows.
/// </para>
/// </summary>
public sealed partial class BookieStore
{
    /// <summary>Live records moved by garbage collection at a time (they share commits; this many are in memory).</summary>
    private const int RelocationBatch = 32;

    /// <summary>
    /// A failing collection is retried after the GC interval times 2, 4, ... up to this factor (with the default 10 s
    /// interval, every 5 min 20 s at most): often enough to notice a disk that recovered, rarely enough not to flood
    /// the log of one that did not.
    /// </summary>
    private const int MaxGcBackoffFactor = 32;

    /// <summary>
    /// The head moves one journal file at a time, this long apart. Moving it past a deleted stream's gigabyte at once
    /// (FASTER then deletes some 20 files, each followed by a directory fsync) stalled every acknowledgement for about
    /// 300 ms; one file at a time, commits run in between (docs/benchmarks.md, 2026-12-07).
    /// </summary>
    private static readonly TimeSpan FileDeletionPause = TimeSpan.FromMilliseconds(20);

    private int _gcFailures;
    private string? _gcError;

    /// <summary>Garbage-collection passes that failed in a row (0 once one succeeds).</summary>
    public int GarbageCollectionFailures => Volatile.Read(ref _gcFailures);

    /// <summary>
    /// The journal's health for readiness: unhealthy when it failed or is closed (no write is taken), degraded while
    /// garbage collection keeps failing (writes are taken, but the journal's space is not reclaimed).
    /// </summary>
    public HealthCheckResult CheckHealth(string name)
    {
        if (!IsHealthy)
        {
            return HealthCheckResult.Unhealthy($"{name}: the journal failed or is closed");
        }

        var failures = GarbageCollectionFailures;
        return failures > 0
            ? HealthCheckResult.Degraded(
                $"{name}: journal garbage collection failed {failures} times in a row ({Volatile.Read(ref _gcError)}); {JournalBytes} journal bytes")
            : HealthCheckResult.Healthy($"{name}: {LedgerCount} ledgers, {JournalBytes} journal bytes");
    }

    /// <summary>
    /// One garbage-collection pass (also run periodically): returns the journal bytes reclaimed. Throws if a live
    /// record that must move cannot be read; what was moved by then stays moved, and nothing live is dropped.
    /// </summary>
    public async Task<long> CollectGarbageAsync()
    {
        var before = _journal.BeginAddress;
        long minLive;
        List<(long Address, JournalRecordType Type, long Ledger, long Entry)> relocate = [];
        lock (_lock)
        {
            minLive = _journal.CommittedUntilAddress;
            foreach (var state in _ledgers.Values)
            {
                minLive = Math.Min(minLive, state.MinAddress());
            }

            foreach (var pending in _pending)
            {
                minLive = Math.Min(minLive, pending.Address);
            }

            // A live record pinning the oldest file while the journal grows: copy such records forward.
            var headEnd = before + _journal.SegmentSize;
            if (minLive < headEnd && _journal.TailAddress - before > 3 * _journal.SegmentSize)
            {
                foreach (var (ledger, state) in _ledgers)
                {
                    foreach (var (entry, address) in state.Entries)
                    {
                        if (address < headEnd)
                        {
                            relocate.Add((address, JournalRecordType.Entry, ledger, entry));
                        }
                    }

                    if (state.FenceAddress >= 0 && state.FenceAddress < headEnd)
                    {
                        relocate.Add((state.FenceAddress, JournalRecordType.Fence, ledger, -1));
                    }
                }
            }
        }

        if (minLive > before)
        {
            await TruncateFileByFileAsync(before, minLive);
        }

        lock (_lock)
        {
            _deleted.Prune(_journal.BeginAddress);
        }

        // A few at a time: they share commits, and only so many records are read into memory at once.
        foreach (var batch in relocate.Chunk(RelocationBatch))
        {
            await Task.WhenAll(batch.Select(r => RelocateAsync(r.Address, r.Type, r.Ledger, r.Entry)));
        }

        return _journal.BeginAddress - before;
    }

    /// <summary>Moves the journal's head from <paramref name="from"/> to <paramref name="until"/> one file boundary at a time.</summary>
    private async Task TruncateFileByFileAsync(long from, long until)
    {
        var fileSize = _journal.SegmentSize;
        for (var boundary = (from / fileSize + 1) * fileSize; boundary < until; boundary += fileSize)
        {
            _journal.TruncateUntil(boundary);
            await Task.Delay(FileDeletionPause, _stop.Token);
        }

        _journal.TruncateUntil(until);
    }

    private async Task RelocateAsync(long address, JournalRecordType type, long ledger, long entry)
    {
        IMemoryOwner<byte> owner;
        int length;
        try
        {
            (owner, length) = await _journal.ReadAsync(address);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or FASTER.core.FasterException)
        {
            lock (_lock)
            {
                if (_closed || !StillAt(address, type, ledger, entry))
                {
                    return; // stopping (the journal refuses reads), or deleted or moved meanwhile: nothing to copy
                }
            }

            throw new IOException($"Garbage collection could not read the live record at journal address {address} (ledger {ledger}, entry {entry}) to move it: {e.Message}", e);
        }

        using (owner)
        {
            var pending = new PendingRecord(type, ledger, entry, -1, length) { RelocatedFrom = address };
            lock (_lock)
            {
                // Only a record still in use moves; a ledger deleted meanwhile is not copied past its delete record.
                if (_failed || _closed || !StillAt(address, type, ledger, entry))
                {
                    return;
                }

                try
                {
                    EnqueueLocked(pending, owner.Memory.Span[..length]);
                }
                catch (JournalFailedException)
                {
                    return; // the record stays where it was
                }
            }

            _commitSignal.Release();
            await pending.Completion.Task.WaitAsync(_stop.Token); // a stopping store commits nothing more
        }
    }

    /// <summary>True if the index still points at the record (lock held).</summary>
    private bool StillAt(long address, JournalRecordType type, long ledger, long entry) =>
        _ledgers.TryGetValue(ledger, out var state)
        && ((type == JournalRecordType.Entry && state.Entries.TryGetValue(entry, out var current) && current == address)
            || (type == JournalRecordType.Fence && state.FenceAddress == address));

    private async Task CollectLoopAsync()
    {
        var delay = _options.GcInterval;
        try
        {
            while (true)
            {
                await Task.Delay(delay, _stop.Token);
                try
                {
                    var reclaimed = await CollectGarbageAsync();
                    if (Interlocked.Exchange(ref _gcFailures, 0) is var failed and > 0)
                    {
                        _logger.LogWarning("Journal garbage collection works again after {Failures} failed passes.", failed);
                    }

                    Volatile.Write(ref _gcError, null);
                    delay = _options.GcInterval;
                    if (reclaimed > 0)
                    {
                        _logger.LogInformation("Reclaimed {Bytes} journal bytes; {Live} bytes remain for {Ledgers} ledgers.", reclaimed, JournalBytes, LedgerCount);
                    }
                }
                catch (Exception e) when (!_stop.IsCancellationRequested)
                {
                    var failures = Interlocked.Increment(ref _gcFailures);
                    Volatile.Write(ref _gcError, e.Message);
                    BookieMetrics.GcFailures.Add(1);
                    delay = _options.GcInterval * Math.Min(MaxGcBackoffFactor, 1L << Math.Min(failures, 30));
                    _logger.LogError(e, "Journal garbage collection failed ({Failures} in a row); retrying in {Delay}.", failures, delay);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }
}
