using Microsoft.Extensions.Logging;

namespace Streams.Ledger;

// The writer's ensemble change: replacing failed bookies by recording a new fragment (compare-and-set on the
// ledger's metadata), and re-sending what the new write sets lack. One repair loop at a time per writer.
public sealed partial class LedgerWriter
{
    /// <summary>Runs the repair loop, or asks the running one for one more pass (lock held).</summary>
    private void RequestRepair()
    {
        if (_repairRunning)
        {
            _repairAgain = true;
            return;
        }

        _repairRunning = true;
        _repairs = Task.Run(RepairLoopAsync);
    }

    private async Task RepairLoopAsync()
    {
        while (true)
        {
            try
            {
                await RepairAsync();
            }
            catch (Exception e)
            {
                lock (_lock)
                {
                    Fail(new LedgerException($"Ledger {LedgerId}: the ensemble change failed: {e.Message}", e));
                }
            }

            lock (_lock)
            {
                if (!_repairAgain || _failure is not null)
                {
                    _repairRunning = false;
                    return;
                }

                _repairAgain = false;
            }
        }
    }

    /// <summary>
    /// Replaces the failing members of the ensemble with spare bookies in a new fragment, if there are spares, then
    /// sends every pending entry where it still has to go.
    /// </summary>
    private async Task RepairAsync()
    {
        while (true)
        {
            LedgerMetadata current;
            long version;
            List<string> failed;
            lock (_lock)
            {
                if (_failure is not null)
                {
                    return;
                }

                (current, version) = (_metadata, _version);
                failed = [.. current.Fragments[^1].Bookies.Where(_failing.ContainsKey)];
                if (failed.Count == 0 || _closed || Environment.TickCount64 < _noSpareUntil)
                {
                    failed.Clear();
                }
            }

            if (failed.Count == 0)
            {
                ResendPending();
                return;
            }

            var ensemble = current.Fragments[^1].Bookies;
            var spares = await SparesAsync(ensemble);
            if (spares.Count == 0)
            {
                lock (_lock)
                {
                    _noSpareUntil = Environment.TickCount64 + (long)Options.RetryDelay.TotalMilliseconds;
                }

                _logger.LogDebug("Ledger {Ledger}: no spare bookie to replace {Bookies}; continuing with the rest of the ensemble.", LedgerId, string.Join(", ", failed));
                ResendPending();
                return;
            }

            var replacements = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var bookie in failed)
            {
                if (replacements.Count < spares.Count)
                {
                    replacements[bookie] = spares[replacements.Count];
                }
            }

            var bookies = ensemble.Select(b => replacements.GetValueOrDefault(b, b)).ToList();
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
                _holdFrom = first;
            }

            long? next;
            try
            {
                next = await _manager.Store.TrySetAsync(LedgerMetadata.PathOf(LedgerId), changed.ToJson(), version);
            }
            finally
            {
                lock (_lock)
                {
                    _holdFrom = long.MaxValue;
                }
            }

            if (next is { } stored)
            {
                lock (_lock)
                {
                    (_metadata, _version) = (changed, stored);
                    foreach (var replaced in replacements.Keys)
                    {
                        _failing.Remove(replaced);
                    }
                }

                foreach (var (failedBookie, replacement) in replacements)
                {
                    _logger.LogInformation("Ledger {Ledger}: replaced bookie {Failed} with {Replacement} from entry {First}.", LedgerId, failedBookie, replacement, changed.Fragments[^1].FirstEntryId);
                }

                ResendPending();
                return;
            }

            // The metadata changed under us: if someone took the ledger into recovery, this writer is done.
            var reread = await _manager.ReadMetadataAsync(LedgerId);
            lock (_lock)
            {
                if (reread.Metadata.State != LedgerState.Open)
                {
                    Fail(new LedgerFencedException(LedgerId));
                    return;
                }

                (_metadata, _version) = reread;
            }
        }
    }

    /// <summary>
    /// Registered bookies outside the ensemble that answer, in random order: suspects only once a probe got an
    /// answer from them, and none that failed this writer within the retry delay.
    /// </summary>
    private async Task<List<string>> SparesAsync(IReadOnlyList<string> ensemble)
    {
        var (healthy, suspect) = await _manager.Bookies.CandidatesAsync();
        var spares = healthy.Where(b => !ensemble.Contains(b)).ToList();
        if (spares.Count == 0)
        {
            var others = suspect.Where(b => !ensemble.Contains(b)).ToList();
            await Task.WhenAll(others.Select(b => _manager.Bookies.ProbeAsync(b)));
            spares = [.. others.Where(b => !_manager.Bookies.IsSuspect(b))];
        }

        var now = Environment.TickCount64;
        lock (_lock)
        {
            spares.RemoveAll(b => _failing.TryGetValue(b, out var failedAt) && now - failedAt < Options.RetryDelay.TotalMilliseconds);
        }

        return [.. spares.OrderBy(_ => Random.Shared.Next())];
    }

    /// <summary>
    /// Completes what is acknowledged on its current write set, and sends every other pending entry to the members
    /// of its (new) write set that do not have it yet.
    /// </summary>
    private void ResendPending()
    {
        List<(PendingAdd Add, string Bookie)> sends = [];
        List<PendingAdd> completed = [];
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

                if (!TryTargetsOf(add, out var targets))
                {
                    return;
                }

                sends.AddRange(targets.Select(t => (add, t)));
            }

            CompleteAcknowledged(completed);
        }

        foreach (var done in completed)
        {
            done.Completion.TrySetResult(done.Id);
        }

        foreach (var (add, bookie) in sends)
        {
            _ = SendAsync(add, bookie);
        }
    }
}
