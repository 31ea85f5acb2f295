using System.Buffers;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Storage;

/// <summary>
/// A bookie's storage: ledger entries in the journal, an in-memory index from (ledger, entry) to journal address,
/// fencing and deletion.
/// <para>
/// Why it is built this way. Every request that changes state (add, fence, delete) is a journal record. Records are
/// enqueued in arrival order under one lock and applied to the index, and answered, only once a commit covers them,
/// in journal order. So an acknowledged add is on disk; a fence's answer (the ledger's last entry) already reflects
/// every add that came before it; and replaying the journal after a crash rebuilds exactly the acknowledged state.
/// Fencing takes effect at once: adds that arrive after a fence are refused even before the fence is durable.
/// </para>
/// <para>
/// Nothing waits for the disk under the lock, and no caller's thread waits at all. A record is copied into the
/// journal's memory at once when it has room (the fast path); when it is full (its pages are still being flushed),
/// the record is copied into a pooled buffer and queued behind any others waiting, and one drainer enqueues the
/// waiting records in order after each commit (the slow path). While anything waits, new records queue behind it, so
/// the journal's order stays the arrival order, and the decisions taken on arrival (fenced, deleted) stay right.
/// </para>
/// <para>
/// Space: deleting a ledger drops it from the index; garbage collection moves the journal's head past records no
/// live ledger needs, deleting whole journal files, and copies live records out of the oldest file when they would
/// pin it. Entry ids of deleted ledgers are never served again (ledger ids are never reused).
/// </para>
/// </summary>
public sealed partial class BookieStore : IAsyncDisposable
{
    /// <summary>
    /// How long the drainer of waiting records sleeps at most between tries. It wakes at every commit (a commit
    /// completes the flushes that free journal pages); the timeout only covers a page whose flush FASTER started on
    /// its own, without a commit to signal it.
    /// </summary>
    private static readonly TimeSpan SpaceRetryDelay = TimeSpan.FromMilliseconds(5);

    private readonly Journal _journal;
    private readonly BookieOptions _options;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly Dictionary<long, LedgerState> _ledgers = [];
    private readonly DeletedLedgers _deleted = new();
    private readonly Queue<PendingRecord> _pending = new();
    private readonly Queue<WaitingRecord> _waiting = new();
    private readonly SemaphoreSlim _commitSignal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _committed = NewCommitSignal();
    private Task? _committer;
    private Task? _collector;
    private Task? _drainer;
    private volatile bool _failed;
    private bool _closed;

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

    /// <summary>Deleted ledgers still remembered (see <see cref="DeletedLedgers"/>: bounded by the journal's retained range).</summary>
    public int DeletedLedgerCount
    {
        get
        {
            lock (_lock)
            {
                return _deleted.Count;
            }
        }
    }

    /// <summary>The settings the store was opened with.</summary>
    public BookieOptions Options => _options;

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
        var handedOver = false;
        try
        {
            JournalRecord.Write(buffer, JournalRecordType.Entry, ledger, entry, lastAddConfirmed, crc, payload);
            var pending = new PendingRecord(JournalRecordType.Entry, ledger, entry, lastAddConfirmed, size);
            lock (_lock)
            {
                if (_failed || _closed)
                {
                    return Task.FromResult(BookieStatus.Unavailable);
                }

                if (_deleted.Contains(ledger) || (_ledgers.TryGetValue(ledger, out var state) && state.Fenced && !recovery))
                {
                    return Task.FromResult(_deleted.Contains(ledger) ? BookieStatus.NoSuchLedger : BookieStatus.Fenced);
                }

                handedOver = !EnqueueLocked(pending, buffer.AsSpan(0, size), buffer);
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
            if (!handedOver)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>Fences a ledger: no add is accepted from now on (except recovery adds). Answers once durable.</summary>
    public async Task<LedgerSummary> FenceAsync(long ledger)
    {
        var pending = new PendingRecord(JournalRecordType.Fence, ledger, -1, -1, JournalRecord.HeaderSize);
        lock (_lock)
        {
            if (_failed || _closed)
            {
                return new LedgerSummary(BookieStatus.Unavailable, -1, -1, false);
            }

            if (_deleted.Contains(ledger))
            {
                return new LedgerSummary(BookieStatus.NoSuchLedger, -1, -1, false);
            }

            if (!TryEnqueueControl(pending))
            {
                return new LedgerSummary(BookieStatus.Unavailable, -1, -1, false);
            }

            StateOf(ledger).Fenced = true;
        }

        _commitSignal.Release();
        return (await pending.Completion.Task).Summary;
    }

    /// <summary>Deletes a ledger: its entries are no longer served and their space is reclaimed.</summary>
    public async Task<BookieStatus> DeleteAsync(long ledger)
    {
        var pending = new PendingRecord(JournalRecordType.Delete, ledger, -1, -1, JournalRecord.HeaderSize);
        lock (_lock)
        {
            if (_failed || _closed)
            {
                return BookieStatus.Unavailable;
            }

            if (_deleted.Contains(ledger))
            {
                return BookieStatus.Ok;
            }

            if (!TryEnqueueControl(pending))
            {
                return BookieStatus.Unavailable;
            }

            _deleted.Add(ledger, pending);
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

    public async ValueTask DisposeAsync()
    {
        Task? drainer;
        lock (_lock)
        {
            _closed = true;
            drainer = _drainer;
        }

        await _stop.CancelAsync();
        if (_committer is not null)
        {
            await _committer;
        }

        if (_collector is not null)
        {
            await _collector;
        }

        if (drainer is not null)
        {
            await drainer;
        }

        FailPending(BookieStatus.Unavailable);
        await _journal.DisposeAsync();
        _stop.Dispose();
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
                TaskCompletionSource signal;
                lock (_lock)
                {
                    while (_pending.TryPeek(out var next) && next.Address < committed)
                    {
                        _pending.Dequeue();
                        done.Add((next, Apply(next)));
                    }

                    signal = _committed;
                    _committed = NewCommitSignal();
                }

                signal.TrySetResult();

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
        finally
        {
            lock (_lock)
            {
                _committed.TrySetResult(); // the drainer is not left waiting for a commit that never comes
            }
        }
    }

    /// <summary>
    /// Enqueues a record in arrival order (lock held): into the journal at once if nothing waits and its memory has
    /// room (true), else behind the waiting records (false). A waiting record takes over <paramref name="rented"/>
    /// (a buffer from the shared pool holding it), or a copy of <paramref name="record"/> if there is none. Throws
    /// <see cref="JournalFailedException"/> if the journal failed.
    /// </summary>
    private bool EnqueueLocked(PendingRecord pending, ReadOnlySpan<byte> record, byte[]? rented = null)
    {
        if (_waiting.Count == 0 && _journal.TryEnqueue(record, out var address))
        {
            pending.Address = address;
            _pending.Enqueue(pending);
            return true;
        }

        _waiting.Enqueue(rented is null ? WaitingRecord.Copy(pending, record) : new WaitingRecord(pending, rented, record.Length));
        BookieMetrics.JournalFullWaits.Add(1);
        if (_drainer is null || _drainer.IsCompleted)
        {
            _drainer = Task.Run(DrainAsync, CancellationToken.None);
        }

        return false;
    }

    /// <summary>Enqueues a fence or delete record (lock held); false if the journal failed.</summary>
    private bool TryEnqueueControl(PendingRecord pending)
    {
        try
        {
            EnqueueLocked(pending, Control(pending.Type, pending.Ledger));
            return true;
        }
        catch (JournalFailedException)
        {
            return false;
        }
    }

    /// <summary>
    /// The slow path: moves waiting records into the journal, in order, as memory frees, waking after each commit
    /// (which it asks for, so that full pages flush). Ends when nothing waits, the store stops, or the journal fails.
    /// </summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            Task committed;
            lock (_lock)
            {
                try
                {
                    while (!_closed && _waiting.TryPeek(out var next) && _journal.TryEnqueue(next.Bytes, out var address))
                    {
                        _waiting.Dequeue();
                        next.Pending.Address = address;
                        _pending.Enqueue(next.Pending);
                        next.Release();
                    }
                }
                catch (JournalFailedException)
                {
                    // The commit loop fails with it and fails every pending and waiting record.
                }

                if (_closed || _failed || _waiting.Count == 0)
                {
                    _commitSignal.Release();
                    return;
                }

                committed = _committed.Task;
            }

            _commitSignal.Release();
            await Task.WhenAny(committed, Task.Delay(SpaceRetryDelay, _stop.Token));
        }
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
            foreach (var waiting in _waiting)
            {
                failed.Add(waiting.Pending);
                waiting.Release();
            }

            _waiting.Clear();
        }

        foreach (var pending in failed)
        {
            pending.Completion.TrySetResult(new RecordOutcome(status, new LedgerSummary(status, -1, -1, false)));
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
                        _deleted.Add(record.Ledger, address);
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

    private static TaskCompletionSource NewCommitSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static byte[] Control(JournalRecordType type, long ledger)
    {
        var record = new byte[JournalRecord.HeaderSize];
        JournalRecord.Write(record, type, ledger, -1, -1, 0, ReadOnlySequence<byte>.Empty);
        return record;
    }
}
