using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;

namespace Streams.Ledger;

/// <summary>
/// Appends entries to one ledger (BookKeeper's LedgerHandle with its PendingAddOps).
/// <para>
/// Why it works. Entry e goes to its write set: Qw consecutive bookies of the ensemble starting at e mod E
/// (striping). It is acknowledged once Qa of them stored it durably AND every earlier entry is acknowledged, so the
/// last-add-confirmed (LAC) always names a durable prefix; each entry carries the writer's LAC, which recovery reads
/// back. If the metadata changed under the writer (recovery by a new owner), or a bookie answers FENCED, the writer
/// stops: it can write nothing more.
/// </para>
/// <para>
/// Failure strategy. Every copy has a deadline (<see cref="LedgerOptions.AddTimeout"/>) and any failure of it (no
/// answer in time, a broken or disposed client, an error status) is a bookie failure: the copy is given up, and an
/// entry that can no longer reach Qa members of its write set fails the writer, so no entry is ever left neither
/// acknowledged nor failed. A failed bookie is replaced: the writer records a new fragment (the ensemble with a
/// live spare, from LAC + 1 on) by compare-and-set on the metadata and re-sends what the replacement lacks. With no
/// spare it stays in the ensemble and the writer carries on without it while Qa members of each write set remain;
/// it is left alone for <see cref="LedgerOptions.RetryDelay"/> and then sent new entries again (at once if an entry
/// needs it to reach Qa), so a bookie that restarts is written to again and a second failure later still finds Qa
/// bookies. Copies an entry missed while its bookie was down are not re-sent: the entry is on Qa others.
/// </para>
/// </summary>
public sealed partial class LedgerWriter
{
    private readonly LedgerManager _manager;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly LinkedList<PendingAdd> _pending = new();

    /// <summary>Bookies whose last call failed, with when (ms ticks); one leaves when it acknowledges a copy or is replaced.</summary>
    private readonly Dictionary<string, long> _failing = new(StringComparer.Ordinal);
    private LedgerMetadata _metadata;
    private long _version;
    private long _lastPushed = -1;
    private long _lac = -1;
    private long _length;
    private Exception? _failure;
    private Task _repairs = Task.CompletedTask;
    private bool _repairRunning;
    private bool _repairAgain;
    private long _noSpareUntil;
    private long _copiedPayloads;

    /// <summary>
    /// While a new fragment from this entry on is being recorded, entries from here are not acknowledged: their copies
    /// count only once it is known which write set they belong to (BookKeeper holds acks during an ensemble change).
    /// </summary>
    private long _holdFrom = long.MaxValue;
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

    /// <summary>Entries whose bytes had to be copied because a send had not read them when the entry completed.</summary>
    internal long CopiedPayloads => Interlocked.Read(ref _copiedPayloads);

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

    private LedgerOptions Options => _manager.Options;

    /// <summary>
    /// Adds an entry; completes with its id once it and every earlier entry are durable on Qa bookies, or fails
    /// when that became impossible (fenced, too few bookies). The payload must stay unchanged until the task
    /// completes; copies still queued then (Qw &gt; Qa) read a private copy (<see cref="EntryPayload"/>).
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

            add = new PendingAdd(++_lastPushed, new EntryPayload(payload), Crc32C.Compute(payload.Span));
            _pending.AddLast(add);
            _length += payload.Length;
            if (!TryTargetsOf(add, out targets))
            {
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
        Task repairs;
        lock (_lock)
        {
            if (_failure is { } failure)
            {
                throw failure;
            }

            // From here on no ensemble change starts, so the metadata version below stays ours.
            _closed = true;
            repairs = _repairs;
        }

        await repairs;
        LedgerMetadata closed;
        long expected;
        lock (_lock)
        {
            if (_failure is { } failure)
            {
                throw failure;
            }

            (closed, expected) = (_metadata with { State = LedgerState.Closed, LastEntryId = LastAddConfirmed, Length = Length }, _version);
        }

        if (await _manager.Store.TrySetAsync(LedgerMetadata.PathOf(LedgerId), closed.ToJson(), expected, cancellationToken) is not { } version)
        {
            throw new LedgerFencedException(LedgerId);
        }

        lock (_lock)
        {
            (_metadata, _version) = (closed, version);
        }
    }

    /// <summary>
    /// The members of an entry's write set to send it to now (marked in flight): those that have not acknowledged,
    /// failed or received it, without bookies resting after a failure unless the entry needs them to reach Qa. False
    /// (and the writer failed) when too few members are left that could still store it (lock held).
    /// </summary>
    private bool TryTargetsOf(PendingAdd add, out List<string> targets)
    {
        targets = [];
        List<string>? resting = null;
        var possible = 0;
        var now = Environment.TickCount64;
        var writeSet = _metadata.WriteSetOf(add.Id);
        foreach (var bookie in writeSet)
        {
            if (add.Failed.Contains(bookie))
            {
                continue;
            }

            possible++;
            if (add.Acked.Contains(bookie) || add.InFlight.Contains(bookie))
            {
                continue;
            }

            if (_failing.TryGetValue(bookie, out var failedAt) && now - failedAt < Options.RetryDelay.TotalMilliseconds)
            {
                (resting ??= []).Add(bookie);
                possible--;
                continue;
            }

            targets.Add(bookie);
        }

        if (possible < _metadata.AckQuorum && resting is not null)
        {
            // Too few others: try the resting ones now rather than give up on the entry.
            targets.AddRange(resting);
            possible += resting.Count;
        }

        if (possible < _metadata.AckQuorum)
        {
            Fail(new NotEnoughBookiesException(
                $"Ledger {LedgerId}: entry {add.Id} can reach only {possible} of its bookies ({string.Join(", ", writeSet)}; failed: {string.Join(", ", add.Failed)}); {_metadata.AckQuorum} needed."));
            targets.Clear();
            return false;
        }

        foreach (var bookie in targets)
        {
            add.InFlight.Add(bookie);
            add.Payload.ExpectRead();
        }

        return true;
    }

    private async Task SendAsync(PendingAdd add, string bookie)
    {
        BookieStatus status;
        try
        {
            status = await _manager.Bookies.CallAsync(
                bookie,
                (Writer: this, Add: add),
                static (client, s, token) => client.AddAsync(s.Writer.LedgerId, s.Add.Id, s.Writer.LastAddConfirmed, s.Add.Crc, recovery: false, s.Add.Payload, token),
                Options.AddTimeout);
        }
        catch (Exception e)
        {
            // Whatever went wrong, this copy is lost: never leave the entry waiting for it.
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
            _failing.Remove(bookie);

            // A copy counts only on the entry's current write set: readers look nowhere else.
            if (!add.Acked.Contains(bookie) && _metadata.WriteSetOf(add.Id).Contains(bookie))
            {
                add.Acked.Add(bookie);
                add.Acknowledged |= add.Acked.Count >= _metadata.AckQuorum;
            }

            CompleteAcknowledged(completed);
        }

        foreach (var done in completed)
        {
            done.Completion.TrySetResult(done.Id);
        }
    }

    /// <summary>Takes the acknowledged prefix off the pending entries and moves the LAC over it (lock held).</summary>
    private void CompleteAcknowledged(List<PendingAdd> completed)
    {
        // In order: the LAC only moves over a prefix of acknowledged entries.
        while (_pending.First is { } head && head.Value.Acknowledged && head.Value.Id < _holdFrom)
        {
            _pending.RemoveFirst();
            Interlocked.Exchange(ref _lac, head.Value.Id);
            ReleaseCallerBuffer(head.Value);
            completed.Add(head.Value);
        }
    }

    private void OnBookieFailed(PendingAdd add, string bookie, string reason)
    {
        lock (_lock)
        {
            add.InFlight.Remove(bookie);
            add.Failed.Add(bookie);
            if (_failure is not null)
            {
                return;
            }

            if (_failing.TryAdd(bookie, Environment.TickCount64))
            {
                _logger.LogWarning("Ledger {Ledger}: bookie {Bookie} failed on entry {Entry} ({Reason}).", LedgerId, bookie, add.Id, reason);
            }
            else
            {
                _failing[bookie] = Environment.TickCount64;
            }

            RequestRepair();
        }
    }

    /// <summary>Before an entry's caller is answered: a send still to read its bytes gets a copy (lock held).</summary>
    private void ReleaseCallerBuffer(PendingAdd add)
    {
        if (add.Payload.ReleaseCallerBuffer(add.InFlight.Count > 0))
        {
            Interlocked.Increment(ref _copiedPayloads);
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
            ReleaseCallerBuffer(add);
            add.Completion.TrySetException(failure);
        }

        _pending.Clear();
    }
}
