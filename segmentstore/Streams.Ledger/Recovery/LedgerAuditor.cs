using Microsoft.Extensions.Logging;
using Streams.Coordination.Metadata;
using Streams.Ledger.Bookies;

namespace Streams.Ledger.Recovery;

/// <summary>
/// Finds closed ledgers that lost copies and marks them under-replicated (BookKeeper's Auditor). One runs at a time,
/// elected among the bookie processes.
/// <para>
/// A bookie counts as lost once it has been missing from the registrations (<see cref="BookieDirectory.AvailablePath"/>)
/// for <see cref="AutoRecoveryOptions.LostBookieGracePeriod"/>, measured from when this auditor first saw it missing
/// (a new auditor starts the clock again: it may repair later, never earlier). A closed ledger is under-replicated
/// when a lost bookie is in the ensemble of a fragment at a position that stores some of its entries; the mark names
/// those bookies, and the workers copy exactly what they held. Open and in-recovery ledgers are left to their writer
/// (an ensemble change) or to the recovery that closes them; they are marked once closed. A mark whose ledger was
/// deleted, or no longer names a lost bookie (repaired, or the bookie came back), is removed.
/// </para>
/// The auditor only reads ledger metadata; it never changes it.
/// </summary>
internal sealed class LedgerAuditor
{
    private readonly IMetadataStore _store;
    private readonly UnderReplicatedLedgers _marks;
    private readonly AutoRecoveryOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, DateTimeOffset> _missingSince = new(StringComparer.Ordinal);
    private long _underReplicated = -1;

    public LedgerAuditor(IMetadataStore store, AutoRecoveryOptions options, ILogger logger, TimeProvider? time = null)
    {
        options.Validate();
        _store = store;
        _marks = new UnderReplicatedLedgers(store);
        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Ledgers marked at the last look while this auditor leads; null when it does not.</summary>
    public long? UnderReplicated => Interlocked.Read(ref _underReplicated) is var count and >= 0 ? count : null;

    /// <summary>What one audit found.</summary>
    /// <param name="Ledgers">Ledgers looked at.</param>
    /// <param name="Marked">Ledgers marked under-replicated after the audit.</param>
    /// <param name="NextAudit">When the next audit is due for a reason other than a registration change.</param>
    public readonly record struct Result(int Ledgers, int Marked, TimeSpan NextAudit);

    /// <summary>Leads: audits now, again whenever a bookie comes or goes, a grace period ends or the check interval passes.</summary>
    public async Task RunAsync(CancellationToken leadership)
    {
        // What an earlier leadership of this process saw missing may have come back and gone again since.
        _missingSince.Clear();
        try
        {
            while (true)
            {
                var (registered, registrations) = await _store.GetChildrenAndWatchAsync(BookieDirectory.AvailablePath, leadership);
                var result = await AuditAsync(registered, leadership);
                using var next = CancellationTokenSource.CreateLinkedTokenSource(leadership);
                var due = Task.Delay(result.NextAudit, _time, next.Token);
                while (true)
                {
                    // Marks cleared by workers only change the count; a registration change or the timer means a new audit.
                    var (marks, marksChanged) = await _marks.ListAndWatchAsync(leadership);
                    Interlocked.Exchange(ref _underReplicated, marks.Count);
                    if (await Task.WhenAny(registrations, due, marksChanged) != marksChanged)
                    {
                        break;
                    }
                }

                await next.CancelAsync();
                leadership.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            Interlocked.Exchange(ref _underReplicated, -1);
        }
    }

    /// <summary>One audit against the given registered bookies: marks what lost copies, clears what no longer does.</summary>
    public async Task<Result> AuditAsync(IReadOnlyList<string> registered, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var ledgers = new List<(long Id, LedgerMetadata Metadata)>();
        foreach (var child in await _store.GetChildrenAsync(LedgerMetadata.Root, cancellationToken))
        {
            if (!LedgerMetadata.TryParseName(child, out var id))
            {
                continue;
            }

            if (await _store.GetAsync(LedgerMetadata.PathOf(id), cancellationToken) is { } stored)
            {
                ledgers.Add((id, LedgerMetadata.FromJson(stored.Data)));
            }
        }

        var live = new HashSet<string>(registered, StringComparer.Ordinal);
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, metadata) in ledgers)
        {
            foreach (var fragment in metadata.Fragments)
            {
                referenced.UnionWith(fragment.Bookies);
            }
        }

        foreach (var bookie in _missingSince.Keys.Where(b => live.Contains(b) || !referenced.Contains(b)).ToList())
        {
            _missingSince.Remove(bookie);
        }

        foreach (var bookie in referenced.Where(b => !live.Contains(b)))
        {
            if (_missingSince.TryAdd(bookie, now))
            {
                _logger.LogWarning("Bookie {Bookie} is named in ledger metadata but not registered; its copies count as lost after {Grace}.", bookie, _options.LostBookieGracePeriod);
            }
        }

        bool IsLost(string bookie) => _missingSince.TryGetValue(bookie, out var since) && now - since >= _options.LostBookieGracePeriod;
        var next = _options.CheckInterval;
        foreach (var since in _missingSince.Values)
        {
            if (now - since < _options.LostBookieGracePeriod)
            {
                next = Min(next, since + _options.LostBookieGracePeriod - now);
            }
        }

        var marked = new HashSet<long>(await _marks.ListAsync(cancellationToken));
        var underReplicated = 0;
        var present = new HashSet<long>();
        foreach (var (id, metadata) in ledgers)
        {
            present.Add(id);
            if (metadata.State != LedgerState.Closed)
            {
                // Its last entry is not known yet: any lost member of an ensemble may hold copies.
                if (metadata.Fragments.Any(f => f.Bookies.Any(IsLost)))
                {
                    // Marked once closed: look again soon rather than a whole check interval later.
                    next = Min(next, _options.RetryDelay);
                }

                continue;
            }

            var lost = LedgerReplicas.LostCopies(metadata, IsLost);
            if (lost.Count > 0)
            {
                underReplicated++;
                if (await _marks.MarkAsync(id, lost, cancellationToken))
                {
                    _logger.LogInformation("Ledger {Ledger} is under-replicated: its copies on {Lost} are lost.", id, string.Join(", ", lost));
                }
            }
            else if (marked.Contains(id) && LedgerReplicas.LostCopies(metadata, b => !live.Contains(b)).Count == 0)
            {
                // Repaired, or its bookies came back. (A bookie still missing but not lost yet to this auditor, which
                // may have just taken over, keeps its predecessor's mark.)
                await _marks.ClearAsync(id, -1, cancellationToken);
            }
        }

        foreach (var id in marked.Where(id => !present.Contains(id)))
        {
            // Deleted (truncated away): nothing left to repair.
            await _marks.ClearAsync(id, -1, cancellationToken);
        }

        Interlocked.Exchange(ref _underReplicated, underReplicated);
        _logger.LogDebug("Audited {Ledgers} ledgers: {Marked} under-replicated; next audit in {Next}.", ledgers.Count, underReplicated, next);
        return new Result(ledgers.Count, underReplicated, next);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
