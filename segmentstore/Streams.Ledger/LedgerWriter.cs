using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Ledger;

/// <summary>
/// Appends entries to one ledger (BookKeeper's LedgerHandle).
/// <para>
/// Why it works. Entry e goes to its write set: Qw consecutive bookies of the ensemble starting at e mod E
/// (striping). It is acknowledged once Qa of them stored it durably AND every earlier entry is acknowledged, so the
/// last-add-confirmed (LAC) always names a durable prefix; each entry carries the writer's LAC, which recovery reads
/// back. When a bookie fails, the writer records a new fragment (the ensemble with a replacement, from LAC + 1 on) by
/// compare-and-set on the ledger's metadata and re-sends what the replacement lacks; with no spare bookie it carries
/// on without the failed one as long as Qa bookies of each write set remain. If the metadata changed under it
/// (recovery by a new owner), or a bookie answers FENCED, the writer stops: it can write nothing more.
/// </para>
/// </summary>
public sealed class LedgerWriter
{
    private readonly LedgerManager _manager;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly LinkedList<PendingAdd> _pending = new();
    private readonly HashSet<string> _failedBookies = new(StringComparer.Ordinal);
    private LedgerMetadata _metadata;
    private long _version;
    private long _lastPushed = -1;
    private long _lac = -1;
    private long _length;
    private Exception? _failure;
    private Task _ensembleChanges = Task.CompletedTask;
    private bool _closed;

    internal LedgerWriter(LedgerManager manager, long ledgerId, LedgerMetadata metadata, long version, ILogger logger)
    {
        _manager = manager;
        LedgerId = ledgerId;
        _metadata = metadata;
        _version = version;
        _logger = logger;
    }

    public long LedgerId { get; }

    /// <summary>Every entry up to here is durable on Qa bookies.</summary>
    public long LastAddConfirmed => Interlocked.Read(ref _lac);

    /// <summary>Payload bytes added so far.</summary>
    public long Length => Interlocked.Read(ref _length);

    public LedgerMetadata Metadata
    {
        get
        {
            lock (_lock)
            {
                return _metadata;
            }
        }
    }

    /// <summary>
    /// Adds an entry; completes with its id once it and every earlier entry are durable on Qa bookies. The payload is
    /// sent before this returns; it must stay unchanged until the task completes.
    /// </summary>
    public Task<long> AddAsync(ReadOnlyMemory<byte> payload)
    {
        PendingAdd add;
        List<string> targets;
        lock (_lock)
        {
            if (_failure is { } failure)
            {
                return Task.FromException<long>(failure);
            }

            if (_closed)
            {
                return Task.FromException<long>(new InvalidOperationException($"Ledger {LedgerId} is closed."));
            }

            // With Qw > Qa the entry completes before every copy is written: keep our own copy for the stragglers.
            var data = _metadata.WriteQuorum > _metadata.AckQuorum ? payload.ToArray() : payload;
            add = new PendingAdd(++_lastPushed, data, Crc32C.Compute(payload.Span));
            _pending.AddLast(add);
            _length += payload.Length;
            targets = TargetsOf(add);
            if (targets.Count < _metadata.AckQuorum)
            {
                Fail(new NotEnoughBookiesException($"Ledger {LedgerId}: only {targets.Count} live bookies in the write set of entry {add.Id}, {_metadata.AckQuorum} needed."));
                return add.Completion.Task;
            }
        }

        foreach (var bookie in targets)
        {
            _ = SendAsync(add, bookie);
        }

        return add.Completion.Task;
    }

    /// <summary>Waits until every entry added so far is acknowledged (or the writer failed).</summary>
    public Task WaitForPendingAsync()
    {
        lock (_lock)
        {
            return _pending.Last is { } last ? last.Value.Completion.Task : Task.CompletedTask;
        }
    }

    /// <summary>Waits for pending entries, then records the ledger as closed at its last confirmed entry.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        await WaitForPendingAsync();
        await _ensembleChanges;
        lock (_lock)
        {
            if (_failure is { } failure)
            {
                throw failure;
            }

            _closed = true;
        }

        var closed = _metadata with { State = LedgerState.Closed, LastEntryId = LastAddConfirmed, Length = Length };
        if (await _manager.Store.TrySetAsync(LedgerMetadata.PathOf(LedgerId), closed.ToJson(), _version, cancellationToken) is not { } version)
        {
            throw new LedgerFencedException(LedgerId);
        }

        lock (_lock)
        {
            (_metadata, _version) = (closed, version);
        }
    }

    /// <summary>Bookies an entry should be sent to now: its write set without the bookies given up on (lock held).</summary>
    private List<string> TargetsOf(PendingAdd add)
    {
        var targets = new List<string>();
        foreach (var bookie in _metadata.WriteSetOf(add.Id))
        {
            if (!_failedBookies.Contains(bookie) && !add.Acked.Contains(bookie) && add.InFlight.Add(bookie))
            {
                targets.Add(bookie);
            }
        }

        return targets;
    }

    private async Task SendAsync(PendingAdd add, string bookie)
    {
        BookieStatus status;
        try
        {
            var client = await _manager.Bookies.GetAsync(bookie);
            status = await client.AddAsync(LedgerId, add.Id, LastAddConfirmed, add.Crc, recovery: false, add.Data);
        }
        catch (BookieUnavailableException e)
        {
            OnBookieFailed(add, bookie, e.Message);
            return;
        }

        switch (status)
        {
            case BookieStatus.Ok:
                OnAcknowledged(add, bookie);
                break;
            case BookieStatus.Fenced:
                lock (_lock)
                {
                    Fail(new LedgerFencedException(LedgerId));
                }

                break;
            default:
                OnBookieFailed(add, bookie, $"answered {status}");
                break;
        }
    }

    private void OnAcknowledged(PendingAdd add, string bookie)
    {
        List<PendingAdd> completed = [];
        lock (_lock)
        {
            add.InFlight.Remove(bookie);
            add.Acked.Add(bookie);
            if (add.Acked.Count >= _metadata.AckQuorum)
            {
                add.Acknowledged = true;
            }

            // In order: the LAC only moves over a prefix of acknowledged entries.
            while (_pending.First is { } head && head.Value.Acknowledged)
            {
                _pending.RemoveFirst();
                Interlocked.Exchange(ref _lac, head.Value.Id);
                completed.Add(head.Value);
            }
        }

        foreach (var done in completed)
        {
            done.Completion.TrySetResult(done.Id);
        }
    }

    private void OnBookieFailed(PendingAdd add, string bookie, string reason)
    {
        lock (_lock)
        {
            add.InFlight.Remove(bookie);
            if (_failure is not null || _failedBookies.Contains(bookie))
            {
                return;
            }

            _logger.LogWarning("Ledger {Ledger}: bookie {Bookie} failed on entry {Entry} ({Reason}); changing the ensemble.", LedgerId, bookie, add.Id, reason);
            _failedBookies.Add(bookie);
            _ensembleChanges = _ensembleChanges.ContinueWith(_ => ChangeEnsembleAsync(bookie), TaskScheduler.Default).Unwrap();
        }
    }

    /// <summary>Replaces a failed bookie with a spare one in a new fragment, or carries on without it if none is spare.</summary>
    private async Task ChangeEnsembleAsync(string failed)
    {
        try
        {
            while (true)
            {
                LedgerMetadata current;
                long version;
                lock (_lock)
                {
                    if (_failure is not null)
                    {
                        return;
                    }

                    (current, version) = (_metadata, _version);
                }

                var ensemble = current.Fragments[^1].Bookies;
                if (!ensemble.Contains(failed))
                {
                    ResendPending();
                    return;
                }

                var available = await _manager.Bookies.AvailableAsync();
                List<string> spares;
                lock (_lock)
                {
                    spares = [.. available.Where(b => !ensemble.Contains(b) && !_failedBookies.Contains(b))];
                }

                if (spares.Count == 0)
                {
                    _logger.LogWarning("Ledger {Ledger}: no spare bookie to replace {Bookie}; continuing with the rest of the ensemble.", LedgerId, failed);
                    ResendPending();
                    return;
                }

                var replacement = spares[Random.Shared.Next(spares.Count)];
                var bookies = ensemble.Select(b => b == failed ? replacement : b).ToList();
                LedgerMetadata changed;
                lock (_lock)
                {
                    var first = LastAddConfirmed + 1;
                    var fragments = current.Fragments.ToList();
                    if (fragments[^1].FirstEntryId == first)
                    {
                        fragments[^1] = new LedgerFragment(first, bookies);
                    }
                    else
                    {
                        fragments.Add(new LedgerFragment(first, bookies));
                    }

                    changed = current with { Fragments = fragments };
                }

                if (await _manager.Store.TrySetAsync(LedgerMetadata.PathOf(LedgerId), changed.ToJson(), version) is { } next)
                {
                    lock (_lock)
                    {
                        (_metadata, _version) = (changed, next);
                    }

                    _logger.LogInformation("Ledger {Ledger}: replaced bookie {Failed} with {Replacement} from entry {First}.", LedgerId, failed, replacement, changed.Fragments[^1].FirstEntryId);
                    ResendPending();
                    return;
                }

                // The metadata changed under us: if someone took the ledger into recovery, this writer is done.
                var stored = await _manager.ReadMetadataAsync(LedgerId);
                if (stored.Metadata.State != LedgerState.Open)
                {
                    lock (_lock)
                    {
                        Fail(new LedgerFencedException(LedgerId));
                    }

                    return;
                }

                lock (_lock)
                {
                    (_metadata, _version) = stored;
                }
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            lock (_lock)
            {
                Fail(new LedgerException($"Ledger {LedgerId}: the ensemble change after {failed} failed: {e.Message}", e));
            }
        }
    }

    /// <summary>Sends every unacknowledged entry to the members of its (new) write set that do not have it yet.</summary>
    private void ResendPending()
    {
        List<(PendingAdd Add, string Bookie)> sends = [];
        lock (_lock)
        {
            foreach (var add in _pending)
            {
                // Only copies on the entry's current write set count: readers look nowhere else.
                var writeSet = _metadata.WriteSetOf(add.Id);
                add.Acked.RemoveWhere(b => !writeSet.Contains(b));
                add.Acknowledged = add.Acked.Count >= _metadata.AckQuorum;
                if (add.Acknowledged)
                {
                    continue;
                }

                var targets = TargetsOf(add);
                var live = _metadata.WriteSetOf(add.Id).Count(b => !_failedBookies.Contains(b));
                if (live < _metadata.AckQuorum)
                {
                    Fail(new NotEnoughBookiesException($"Ledger {LedgerId}: entry {add.Id} can reach only {live} live bookies; {_metadata.AckQuorum} needed."));
                    return;
                }

                sends.AddRange(targets.Select(t => (add, t)));
            }
        }

        foreach (var (add, bookie) in sends)
        {
            _ = SendAsync(add, bookie);
        }
    }

    /// <summary>Fails the writer and every pending entry (lock held).</summary>
    private void Fail(Exception failure)
    {
        if (_failure is not null)
        {
            return;
        }

        _failure = failure;
        _logger.LogWarning("Ledger {Ledger} writer failed: {Reason}", LedgerId, failure.Message);
        foreach (var add in _pending)
        {
            add.Completion.TrySetException(failure);
        }

        _pending.Clear();
    }

    private sealed class PendingAdd(long id, ReadOnlyMemory<byte> data, uint crc)
    {
        public long Id { get; } = id;

        public ReadOnlyMemory<byte> Data { get; } = data;

        public uint Crc { get; } = crc;

        public HashSet<string> Acked { get; } = new(StringComparer.Ordinal);

        public HashSet<string> InFlight { get; } = new(StringComparer.Ordinal);

        public bool Acknowledged { get; set; }

        public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
