using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Storage;

/// <summary>
/// A bookie's storage: ledger entries in the journal, an in-memory index from (ledger, entry) to journal address,
/// fencing and deletion.
/// <para>
/// Why it is built this way. Every request that changes state (add, fence, delete) is a journal record. Records are
/// enqueued in order under one lock and applied to the index, and answered, only once a commit covers them, in
/// journal order. So an acknowledged add is on disk; a fence's answer (the ledger's last entry) already reflects
/// every add that came before it; and replaying the journal after a crash rebuilds exactly the acknowledged state.
/// Fencing takes effect at once: adds that arrive after a fence are refused even before the fence is durable.
/// </para>
/// <para>
/// Space: deleting a ledger drops it from the index; garbage collection moves the journal's head past records no
/// live ledger needs, deleting whole journal files, and copies live records out of the oldest file when they would
/// pin it. Entry ids of deleted ledgers are never served again (ledger ids are never reused).
/// </para>
/// </summary>
public sealed class BookieStore : IAsyncDisposable
{
    /// <summary>Live records moved by garbage collection at a time (they share commits; this many are in memory).</summary>
    private const int RelocationBatch = 32;

    private readonly Journal _journal;
    private readonly BookieOptions _options;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly Dictionary<long, LedgerState> _ledgers = [];
    private readonly HashSet<long> _deleted = [];
    private readonly Queue<PendingRecord> _pending = new();
    private readonly SemaphoreSlim _commitSignal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private Task? _committer;
    private Task? _collector;
    private volatile bool _failed;

    private BookieStore(Journal journal, BookieOptions options, ILogger logger)
    {
        _journal = journal;
        _options = options;
        _logger = logger;
    }

    public long JournalBytes => _journal.TailAddress - _journal.BeginAddress;

    /// <summary>The journal is open and committing (readiness): false once it failed or the store began to stop.</summary>
    public bool IsHealthy => !_failed && !_stop.IsCancellationRequested;

    public int LedgerCount
    {
        get
        {
            lock (_lock)
            {
                return _ledgers.Count;
            }
        }
    }

    /// <summary>Opens the journal and rebuilds the index from it (the recovery after a crash).</summary>
    public static Task<BookieStore> OpenAsync(BookieOptions options, ILogger logger, CancellationToken cancellationToken = default) =>
        OpenAsync(options, logger, LocalJournalDisk.Instance, cancellationToken);

    /// <summary>Like <see cref="OpenAsync(BookieOptions, ILogger, CancellationToken)"/>, on the given file system.</summary>
    public static async Task<BookieStore> OpenAsync(BookieOptions options, ILogger logger, IJournalDisk disk, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var journal = new Journal(Path.Combine(options.DataDirectory, "journal"), options.JournalSegmentSizeBits, disk);
        await journal.OpenAsync(cancellationToken);
        var store = new BookieStore(journal, options, logger);
        try
        {
            store.Replay();
        }
        catch
        {
            await journal.DisposeAsync();
            throw;
        }

        store._committer = Task.Run(store.CommitLoopAsync, CancellationToken.None);
        store._collector = Task.Run(store.CollectLoopAsync, CancellationToken.None);
        return store;
    }

    /// <summary>Stores an entry; completes when it is durable, or with FENCED / INVALID / UNAVAILABLE.</summary>
    public Task<BookieStatus> AddAsync(long ledger, long entry, long lastAddConfirmed, uint crc, bool recovery, in ReadOnlySequence<byte> payload)
    {
        if (payload.Length > _options.MaxEntrySize.Bytes || ledger < 0 || entry < 0)
        {
            return Task.FromResult(BookieStatus.Invalid);
        }

        if (Crc32C.Compute(payload) != crc)
        {
            // Damaged in transit (or a broken writer): never store what the writer did not send.
            return Task.FromResult(BookieStatus.Invalid);
        }

        var size = JournalRecord.SizeOf(payload.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            JournalRecord.Write(buffer, JournalRecordType.Entry, ledger, entry, lastAddConfirmed, crc, payload);
            PendingRecord pending;
            lock (_lock)
            {
                if (_failed)
                {
                    return Task.FromResult(BookieStatus.Unavailable);
                }

                if (_deleted.Contains(ledger) || (_ledgers.TryGetValue(ledger, out var state) && state.Fenced && !recovery))
                {
                    return Task.FromResult(_deleted.Contains(ledger) ? BookieStatus.NoSuchLedger : BookieStatus.Fenced);
                }

                pending = new PendingRecord(_journal.Enqueue(buffer.AsSpan(0, size)), JournalRecordType.Entry, ledger, entry, lastAddConfirmed, size);
                _pending.Enqueue(pending);
            }

            _commitSignal.Release();
            return pending.Completion.Task.ContinueWith(t => t.Result.Status, TaskScheduler.Default);
        }
        catch (JournalFailedException)
        {
            return Task.FromResult(BookieStatus.Unavailable);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Fences a ledger: no add is accepted from now on (except recovery adds). Answers once durable.</summary>
    public async Task<LedgerSummary> FenceAsync(long ledger)
    {
        PendingRecord? pending;
        lock (_lock)
        {
            if (_failed)
            {
                return new LedgerSummary(BookieStatus.Unavailable, -1, -1, false);
            }

            if (_deleted.Contains(ledger))
            {
                return new LedgerSummary(BookieStatus.NoSuchLedger, -1, -1, false);
            }

            var state = StateOf(ledger);
            state.Fenced = true;
            if (!TryEnqueue(Control(JournalRecordType.Fence, ledger), JournalRecordType.Fence, ledger, out pending))
            {
                return new LedgerSummary(BookieStatus.Unavailable, -1, -1, false);
            }
        }

        _commitSignal.Release();
        return (await pending.Completion.Task).Summary;
    }

    /// <summary>Deletes a ledger: its entries are no longer served and their space is reclaimed.</summary>
    public async Task<BookieStatus> DeleteAsync(long ledger)
    {
        PendingRecord? pending;
        lock (_lock)
        {
            if (_failed)
            {
                return BookieStatus.Unavailable;
            }

            if (_deleted.Contains(ledger))
            {
                return BookieStatus.Ok;
            }

            if (!TryEnqueue(Control(JournalRecordType.Delete, ledger), JournalRecordType.Delete, ledger, out pending))
            {
                return BookieStatus.Unavailable;
            }

            _deleted.Add(ledger);
            _ledgers.Remove(ledger);
        }

        _commitSignal.Release();
        return (await pending.Completion.Task).Status;
    }

    /// <summary>The ledger's last-add-confirmed, last stored entry and fencing as this bookie knows them.</summary>
    public LedgerSummary ReadLac(long ledger)
    {
        lock (_lock)
        {
            return _ledgers.TryGetValue(ledger, out var state)
                ? new LedgerSummary(BookieStatus.Ok, state.LastAddConfirmed, state.LastEntry, state.Fenced)
                : new LedgerSummary(_deleted.Contains(ledger) ? BookieStatus.NoSuchLedger : BookieStatus.Ok, -1, -1, false);
        }
    }

    /// <summary>Reads an entry. Never returns bytes that fail their checksum: those answer CORRUPT.</summary>
    public async Task<EntryRead> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
    {
        long address;
        lock (_lock)
        {
            if (!_ledgers.TryGetValue(ledger, out var state))
            {
                return EntryRead.Failed(BookieStatus.NoSuchLedger, $"Ledger {ledger} is not on this bookie.");
            }

            if (!state.Entries.TryGetValue(entry, out address))
            {
                return EntryRead.Failed(BookieStatus.NoSuchEntry, $"Entry {entry} of ledger {ledger} is not on this bookie.");
            }
        }

        IMemoryOwner<byte> owner;
        int length;
        try
        {
            (owner, length) = await _journal.ReadAsync(address, cancellationToken);
        }
        catch (Exception e) when (e is InvalidDataException or FASTER.core.FasterException)
        {
            _logger.LogError("Entry {Ledger}:{Entry} could not be read at journal address {Address}: {Error}", ledger, entry, address, e.Message);
            BookieMetrics.CorruptEntries.Add(1);
            return EntryRead.Failed(BookieStatus.Corrupt, $"Entry {entry} of ledger {ledger} could not be read: {e.Message}");
        }

        if (!JournalRecord.TryParse(owner.Memory[..length], out var record) || record.Ledger != ledger || record.Entry != entry || !record.PayloadIntact)
        {
            owner.Dispose();
            _logger.LogError("Entry {Ledger}:{Entry} at journal address {Address} failed its checksum; not serving it.", ledger, entry, address);
            BookieMetrics.CorruptEntries.Add(1);
            return EntryRead.Failed(BookieStatus.Corrupt, $"Entry {entry} of ledger {ledger} failed its checksum on this bookie.");
        }

        BookieMetrics.ReadEntries.Add(1);
        return new EntryRead(BookieStatus.Ok, record.LastAddConfirmed, record.PayloadCrc, owner, record.Payload);
    }

    /// <summary>One garbage-collection pass (also run periodically): returns the journal bytes reclaimed.</summary>
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
            _journal.TruncateUntil(minLive);
        }

        // A few at a time: they share commits, and only so many records are read into memory at once.
        foreach (var batch in relocate.Chunk(RelocationBatch))
        {
            await Task.WhenAll(batch.Select(r => RelocateAsync(r.Address, r.Type, r.Ledger, r.Entry)));
        }

        return _journal.BeginAddress - before;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_committer is not null)
        {
            await _committer;
        }

        if (_collector is not null)
        {
            await _collector;
        }

        FailPending(BookieStatus.Unavailable);
        await _journal.DisposeAsync();
        _stop.Dispose();
    }

    private async Task RelocateAsync(long address, JournalRecordType type, long ledger, long entry)
    {
        IMemoryOwner<byte> owner;
        int length;
        try
        {
            (owner, length) = await _journal.ReadAsync(address);
        }
        catch (InvalidDataException)
        {
            return;
        }

        using (owner)
        {
            PendingRecord pending;
            lock (_lock)
            {
                // Only a record still in use moves; a ledger deleted meanwhile is not copied past its delete record.
                if (!_ledgers.TryGetValue(ledger, out var state)
                    || (type == JournalRecordType.Entry && (!state.Entries.TryGetValue(entry, out var current) || current != address))
                    || (type == JournalRecordType.Fence && state.FenceAddress != address))
                {
                    return;
                }

                try
                {
                    pending = new PendingRecord(_journal.Enqueue(owner.Memory.Span[..length]), type, ledger, entry, -1, length) { RelocatedFrom = address };
                }
                catch (JournalFailedException)
                {
                    return; // the record stays where it was
                }

                _pending.Enqueue(pending);
            }

            _commitSignal.Release();
            await pending.Completion.Task.WaitAsync(_stop.Token); // a stopping store commits nothing more
        }
    }

    private async Task CommitLoopAsync()
    {
        var done = new List<(PendingRecord Pending, RecordOutcome Outcome)>();
        try
        {
            while (true)
            {
                await _commitSignal.WaitAsync(_stop.Token);
                while (_commitSignal.CurrentCount > 0)
                {
                    await _commitSignal.WaitAsync(_stop.Token);
                }

                var started = Stopwatch.GetTimestamp();
                var committed = await _journal.CommitAsync(_stop.Token);
                BookieMetrics.CommitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
                BookieMetrics.Commits.Add(1);
                lock (_lock)
                {
                    while (_pending.TryPeek(out var next) && next.Address < committed)
                    {
                        _pending.Dequeue();
                        done.Add((next, Apply(next)));
                    }
                }

                long entries = 0, bytes = 0;
                foreach (var (pending, outcome) in done)
                {
                    if (pending.Type == JournalRecordType.Entry && pending.RelocatedFrom is null)
                    {
                        entries++;
                        bytes += pending.Size - JournalRecord.HeaderSize;
                    }

                    pending.Completion.TrySetResult(outcome);
                }

                BookieMetrics.AddedEntries.Add(entries);
                BookieMetrics.AddedBytes.Add(bytes);

                done.Clear();
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _logger.LogCritical(e, "The bookie journal failed; refusing further writes.");
            _failed = true;
            FailPending(BookieStatus.Unavailable);
        }
    }

    /// <summary>Enqueues a fence or delete record (lock held); false if the journal failed.</summary>
    private bool TryEnqueue(byte[] record, JournalRecordType type, long ledger, [NotNullWhen(true)] out PendingRecord? pending)
    {
        try
        {
            pending = new PendingRecord(_journal.Enqueue(record), type, ledger, -1, -1, JournalRecord.HeaderSize);
        }
        catch (JournalFailedException)
        {
            pending = null;
            return false;
        }

        _pending.Enqueue(pending);
        return true;
    }

    /// <summary>Applies a durable record to the index (lock held).</summary>
    private RecordOutcome Apply(PendingRecord pending)
    {
        switch (pending.Type)
        {
            case JournalRecordType.Entry when pending.RelocatedFrom is { } from:
                if (_ledgers.TryGetValue(pending.Ledger, out var moved) && moved.Entries.TryGetValue(pending.Entry, out var old) && old == from)
                {
                    moved.Entries[pending.Entry] = pending.Address;
                }

                return new RecordOutcome(BookieStatus.Ok, default);
            case JournalRecordType.Entry:
                if (_deleted.Contains(pending.Ledger))
                {
                    return new RecordOutcome(BookieStatus.NoSuchLedger, default);
                }

                var state = StateOf(pending.Ledger);
                state.Entries[pending.Entry] = pending.Address;
                state.LastAddConfirmed = Math.Max(state.LastAddConfirmed, pending.LastAddConfirmed);
                state.LastEntry = Math.Max(state.LastEntry, pending.Entry);
                return new RecordOutcome(BookieStatus.Ok, default);
            case JournalRecordType.Fence:
                if (!_ledgers.TryGetValue(pending.Ledger, out var fenced))
                {
                    return new RecordOutcome(BookieStatus.NoSuchLedger, new LedgerSummary(BookieStatus.NoSuchLedger, -1, -1, false));
                }

                if (pending.RelocatedFrom is null || fenced.FenceAddress == pending.RelocatedFrom)
                {
                    fenced.FenceAddress = pending.Address;
                }

                return new RecordOutcome(BookieStatus.Ok, new LedgerSummary(BookieStatus.Ok, fenced.LastAddConfirmed, fenced.LastEntry, true));
            default:
                return new RecordOutcome(BookieStatus.Ok, default);
        }
    }

    private void FailPending(BookieStatus status)
    {
        List<PendingRecord> failed;
        lock (_lock)
        {
            failed = [.. _pending];
            _pending.Clear();
        }

        foreach (var pending in failed)
        {
            pending.Completion.TrySetResult(new RecordOutcome(status, new LedgerSummary(status, -1, -1, false)));
        }
    }

    private async Task CollectLoopAsync()
    {
        try
        {
            while (true)
            {
                await Task.Delay(_options.GcInterval, _stop.Token);
                var reclaimed = await CollectGarbageAsync();
                if (reclaimed > 0)
                {
                    _logger.LogInformation("Reclaimed {Bytes} journal bytes; {Live} bytes remain for {Ledgers} ledgers.", reclaimed, JournalBytes, LedgerCount);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Journal garbage collection failed; it will not run again until restart.");
        }
    }

    /// <summary>Rebuilds the index from the journal: every committed record, in order.</summary>
    private void Replay()
    {
        var records = 0;
        var skipped = 0;
        foreach (var (address, owner, length) in _journal.Scan())
        {
            using (owner)
            {
                if (!JournalRecord.TryParse(owner.Memory[..length], out var record))
                {
                    skipped++;
                    _logger.LogError("Journal record at {Address} failed its header checksum; skipped (its entry is read from other bookies).", address);
                    continue;
                }

                records++;
                switch (record.Type)
                {
                    case JournalRecordType.Entry when !_deleted.Contains(record.Ledger):
                        var state = StateOf(record.Ledger);
                        state.Entries[record.Entry] = address;
                        state.LastAddConfirmed = Math.Max(state.LastAddConfirmed, record.LastAddConfirmed);
                        state.LastEntry = Math.Max(state.LastEntry, record.Entry);
                        break;
                    case JournalRecordType.Fence when !_deleted.Contains(record.Ledger):
                        var fenced = StateOf(record.Ledger);
                        fenced.Fenced = true;
                        fenced.FenceAddress = address;
                        break;
                    case JournalRecordType.Delete:
                        _deleted.Add(record.Ledger);
                        _ledgers.Remove(record.Ledger);
                        break;
                }
            }
        }

        _logger.LogInformation("Bookie journal replayed: {Records} records, {Ledgers} ledgers, {Skipped} damaged records skipped.", records, _ledgers.Count, skipped);
    }

    private LedgerState StateOf(long ledger)
    {
        if (!_ledgers.TryGetValue(ledger, out var state))
        {
            _ledgers[ledger] = state = new LedgerState();
        }

        return state;
    }

    private static byte[] Control(JournalRecordType type, long ledger)
    {
        var record = new byte[JournalRecord.HeaderSize];
        JournalRecord.Write(record, type, ledger, -1, -1, 0, ReadOnlySequence<byte>.Empty);
        return record;
    }
}
