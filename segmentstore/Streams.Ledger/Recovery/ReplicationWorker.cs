using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.Contracts.Bookie;
using Streams.Coordination.Metadata;
using Streams.Ledger.Bookies;

namespace Streams.Ledger.Recovery;

/// <summary>
/// Repairs the ledgers the auditor marked (BookKeeper's ReplicationWorker); one runs in every bookie process.
/// <para>
/// Why a repair is safe. Only closed ledgers are repaired, and a closed ledger's entries never change, so a copy made
/// now is the entry. Each entry a lost bookie held is read from another member of its write set, its CRC-32C checked
/// (a copy failing it is skipped, never written), and added with that CRC to a replacement: a registered bookie not in
/// the fragment's ensemble. Only then is the replacement recorded, by one compare-and-set on the ledger's metadata at
/// the version the repair started from. A concurrent change (another repair, a deletion) makes it fail and the repair
/// starts over from the metadata as it is now; a deleted ledger is never written back (a set on a missing node fails)
/// and the copies made for it are deleted. Readers keep reading the surviving copies the whole time. A worker holds
/// an ephemeral lock per ledger, so two workers do not copy the same ledger (after a session loss they may; the
/// compare-and-set still lets one win).
/// </para>
/// </summary>
internal sealed class ReplicationWorker
{
    /// <summary>Repairs of one ledger whose metadata kept changing under them before the worker gives up for a while.</summary>
    private const int Attempts = 5;

    private readonly IMetadataStore _store;
    private readonly BookieDirectory _bookies;
    private readonly LedgerManager _ledgers;
    private readonly UnderReplicatedLedgers _marks;
    private readonly string _workerId;
    private readonly AutoRecoveryOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public ReplicationWorker(IMetadataStore store, BookieDirectory bookies, string workerId, AutoRecoveryOptions options, ILogger logger, TimeProvider? time = null)
    {
        options.Validate();
        (_store, _bookies, _workerId, _options, _logger) = (store, bookies, workerId, options, logger);
        _marks = new UnderReplicatedLedgers(store);
        _ledgers = new LedgerManager(store, bookies, bookies.Options, logger);
        _time = time ?? TimeProvider.System;
    }

    public enum Outcome
    {
        /// <summary>The lost copies were made again and the metadata records them.</summary>
        Repaired,

        /// <summary>No bookie of the mark is lost any more (it came back, or the ledger was repaired): the mark is gone.</summary>
        NothingLost,

        /// <summary>The ledger was deleted: the mark and any copies made for it are gone.</summary>
        Deleted,

        /// <summary>There was no mark.</summary>
        Unmarked,

        /// <summary>The ledger is not closed: its writer or its recovery handles it; tried again later.</summary>
        NotClosed,
    }

    /// <summary>Repairs marked ledgers until cancelled: at once when a mark appears, again after a failure or when a bookie registers.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var retryAfter = new Dictionary<long, DateTimeOffset>();
        while (!cancellationToken.IsCancellationRequested)
        {
            var (marks, marksChanged) = await _marks.ListAndWatchAsync(cancellationToken);
            var (_, registrations) = await _store.GetChildrenAndWatchAsync(BookieDirectory.AvailablePath, cancellationToken);
            foreach (var id in retryAfter.Keys.Where(id => !marks.Contains(id)).ToList())
            {
                retryAfter.Remove(id);
            }

            var wait = _options.RetryDelay;
            // Shuffled, so that the workers of several bookies start on different ledgers.
            foreach (var id in marks.OrderBy(_ => Random.Shared.Next()))
            {
                var now = _time.GetUtcNow();
                if (retryAfter.TryGetValue(id, out var after) && after > now)
                {
                    wait = after - now < wait ? after - now : wait;
                    continue;
                }

                if (!await _marks.TryLockAsync(id, _workerId, cancellationToken))
                {
                    continue;
                }

                try
                {
                    if (await RepairAsync(id, cancellationToken) == Outcome.NotClosed)
                    {
                        retryAfter[id] = _time.GetUtcNow() + _options.RetryDelay;
                    }
                    else
                    {
                        retryAfter.Remove(id);
                    }
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    AutoRecoveryMetrics.Failures.Add(1);
                    // Once per ledger while it keeps failing (no spare bookie fails every ledger, every round).
                    _logger.Log(retryAfter.ContainsKey(id) ? LogLevel.Debug : LogLevel.Warning,
                        "Repairing ledger {Ledger} failed ({Error}); trying again every {Delay} and when a bookie registers.", id, e.Message, _options.RetryDelay);
                    retryAfter[id] = _time.GetUtcNow() + _options.RetryDelay;
                }
                finally
                {
                    await _marks.UnlockAsync(id);
                }
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            await Task.WhenAny(marksChanged, registrations, Task.Delay(wait, _time, stop.Token));
            await stop.CancelAsync();
            if (registrations.IsCompleted)
            {
                // A bookie came: it may be the spare a failed repair lacked.
                retryAfter.Clear();
            }
        }
    }

    /// <summary>Repairs one marked ledger; throws when it cannot now (no spare bookie, no readable copy of an entry).</summary>
    public async Task<Outcome> RepairAsync(long ledgerId, CancellationToken cancellationToken = default)
    {
        if (await _marks.GetAsync(ledgerId, cancellationToken) is not var (mark, markVersion))
        {
            return Outcome.Unmarked;
        }

        using var activity = LedgerTracing.Source.StartActivity("RepairLedger");
        activity?.SetTag("streams.ledger", ledgerId);
        var copiedTo = new HashSet<string>(StringComparer.Ordinal);
        var refusing = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            for (var attempt = 1; attempt <= Attempts; attempt++)
            {
                var path = LedgerMetadata.PathOf(ledgerId);
                if (await _store.GetAsync(path, cancellationToken) is not { } stored)
                {
                    await DeleteCopiesAsync(ledgerId, copiedTo);
                    await _marks.ClearAsync(ledgerId, -1, cancellationToken);
                    _logger.LogInformation("Ledger {Ledger} was deleted before its repair was recorded; nothing to repair.", ledgerId);
                    return Outcome.Deleted;
                }

                var metadata = LedgerMetadata.FromJson(stored.Data);
                if (metadata.State != LedgerState.Closed)
                {
                    return Outcome.NotClosed;
                }

                var registered = new HashSet<string>(await _store.GetChildrenAsync(BookieDirectory.AvailablePath, cancellationToken), StringComparer.Ordinal);
                var lost = new HashSet<string>(mark.LostBookies.Where(b => !registered.Contains(b)), StringComparer.Ordinal);
                var plan = Plan(metadata, lost, registered, refusing);
                if (plan.Count == 0)
                {
                    await _marks.ClearAsync(ledgerId, markVersion, cancellationToken);
                    return Outcome.NothingLost;
                }

                long entries = 0, bytes = 0;
                try
                {
                    foreach (var (fragment, position, replacement) in plan)
                    {
                        copiedTo.Add(replacement);
                        var (copied, copiedBytes) = await CopyAsync(ledgerId, metadata, fragment, position, replacement, lost, cancellationToken);
                        entries += copied;
                        bytes += copiedBytes;
                    }
                }
                catch (ReplacementRefusedException e)
                {
                    // It dropped this ledger before (a copy of an earlier attempt, deleted): pick another.
                    refusing.Add(e.Bookie);
                    continue;
                }
                catch (LedgerException)
                {
                    // The sources may lack the entries because the ledger is being deleted: then the copies go too.
                    if (await _store.GetAsync(path, cancellationToken) is null)
                    {
                        continue;
                    }

                    throw;
                }

                var fragments = metadata.Fragments.ToList();
                foreach (var (fragment, position, replacement) in plan)
                {
                    var bookies = fragments[fragment].Bookies.ToList();
                    bookies[position] = replacement;
                    fragments[fragment] = fragments[fragment] with { Bookies = bookies };
                }

                if (await _store.TrySetAsync(path, (metadata with { Fragments = fragments }).ToJson(), stored.Version, cancellationToken) is not null)
                {
                    AutoRecoveryMetrics.RepairedLedgers.Add(1);
                    AutoRecoveryMetrics.RepairedEntries.Add(entries);
                    AutoRecoveryMetrics.CopiedBytes.Add(bytes);
                    activity?.SetTag("streams.entries", entries);
                    await _marks.ClearAsync(ledgerId, markVersion, cancellationToken);
                    _logger.LogInformation("Repaired ledger {Ledger}: {Entries} entries copied; {Changes}.", ledgerId, entries,
                        string.Join(", ", plan.Select(p => $"fragment {metadata.Fragments[p.Fragment].FirstEntryId}: {metadata.Fragments[p.Fragment].Bookies[p.Position]} -> {p.Replacement}")));
                    return Outcome.Repaired;
                }

                _logger.LogInformation("Ledger {Ledger} changed while it was being repaired; looking at it again.", ledgerId);
            }

            throw new LedgerException($"Ledger {ledgerId} kept changing while it was being repaired ({Attempts} attempts).");
        }
        catch (Exception e) when (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }

    /// <summary>Fragment, ensemble position and replacement of every lost copy; throws when a fragment has too few spare bookies.</summary>
    private static List<(int Fragment, int Position, string Replacement)> Plan(LedgerMetadata metadata, HashSet<string> lost, HashSet<string> registered, HashSet<string> refusing)
    {
        var plan = new List<(int, int, string)>();
        for (var i = 0; i < metadata.Fragments.Count; i++)
        {
            var ensemble = metadata.Fragments[i].Bookies;
            var spares = registered.Where(b => !ensemble.Contains(b) && !refusing.Contains(b)).OrderBy(_ => Random.Shared.Next()).ToList();
            for (var position = 0; position < ensemble.Count; position++)
            {
                if (!lost.Contains(ensemble[position]) || !LedgerReplicas.HoldsEntries(metadata, i, position))
                {
                    continue;
                }

                if (spares.Count == 0)
                {
                    throw new NotEnoughBookiesException(
                        $"No spare bookie to replace {ensemble[position]} in the fragment from entry {metadata.Fragments[i].FirstEntryId} (ensemble {string.Join(", ", ensemble)}; registered {string.Join(", ", registered)}).");
                }

                plan.Add((i, position, spares[^1]));
                spares.RemoveAt(spares.Count - 1);
            }
        }

        return plan;
    }

    /// <summary>Copies every entry of a fragment that the bookie at <paramref name="position"/> stored to <paramref name="replacement"/>.</summary>
    private async Task<(long Entries, long Bytes)> CopyAsync(
        long ledgerId, LedgerMetadata metadata, int fragment, int position, string replacement, HashSet<string> lost, CancellationToken cancellationToken)
    {
        var (first, last) = LedgerReplicas.RangeOf(metadata, fragment);
        var ensemble = metadata.Fragments[fragment].Bookies;
        long entries = 0, bytes = 0;
        await Parallel.ForEachAsync(
            EntriesOf(first, last, position, ensemble.Count, metadata.WriteQuorum),
            new ParallelOptions { MaxDegreeOfParallelism = _options.CopyParallelism, CancellationToken = cancellationToken },
            async (entry, token) =>
            {
                var size = await CopyEntryAsync(ledgerId, metadata, entry, replacement, lost, token);
                Interlocked.Increment(ref entries);
                Interlocked.Add(ref bytes, size);
            });
        return (entries, bytes);
    }

    private static IEnumerable<long> EntriesOf(long first, long last, int position, int ensembleSize, int writeQuorum)
    {
        for (var entry = first; entry <= last; entry++)
        {
            if (LedgerMetadata.InWriteSet(position, entry, ensembleSize, writeQuorum))
            {
                yield return entry;
            }
        }
    }

    /// <summary>
    /// Reads an entry from a surviving member of its write set whose copy passes its checksum (as every ledger read
    /// does), and adds it to the replacement; every call within its deadline.
    /// </summary>
    private async Task<long> CopyEntryAsync(long ledgerId, LedgerMetadata metadata, long entryId, string replacement, HashSet<string> lost, CancellationToken cancellationToken)
    {
        var (read, _) = await _ledgers.TryReadAsync(metadata, ledgerId, entryId, cancellationToken, skip: source => lost.Contains(source) || source == replacement);
        if (read is not { } entry)
        {
            throw new LedgerException(
                $"Ledger {ledgerId} entry {entryId}: no surviving bookie of {string.Join(", ", metadata.WriteSetOf(entryId))} served a copy that passes its checksum.");
        }

        using (entry)
        {
            var status = await _bookies.CallAsync(
                replacement,
                (Ledger: ledgerId, Entry: entryId, Data: entry.Data),
                static (client, s, token) => client.AddAsync(s.Ledger, s.Entry, s.Data.LastAddConfirmed, s.Data.Crc, recovery: true, new EntryPayload(s.Data.Payload), token),
                _bookies.Options.AddTimeout,
                cancellationToken);
            return status switch
            {
                BookieStatus.Ok => entry.Data.Payload.Length,
                BookieStatus.NoSuchLedger => throw new ReplacementRefusedException(replacement),
                _ => throw new LedgerException($"Ledger {ledgerId} entry {entryId}: the replacement bookie {replacement} answered {status}."),
            };
        }
    }

    /// <summary>Deletes a deleted ledger's copies from the bookies this repair wrote them to (nobody else knows of them).</summary>
    private async Task DeleteCopiesAsync(long ledgerId, IEnumerable<string> bookies)
    {
        foreach (var bookie in bookies)
        {
            try
            {
                await _bookies.CallAsync(bookie, ledgerId, static (client, ledger, token) => client.DeleteAsync(ledger, token), _bookies.Options.ReadTimeout);
            }
            catch (BookieUnavailableException e)
            {
                _logger.LogWarning("Ledger {Ledger}: copies on {Bookie} of the deleted ledger could not be deleted: {Error}", ledgerId, bookie, e.Message);
            }
        }
    }

    private sealed class ReplacementRefusedException(string bookie) : LedgerException($"Bookie {bookie} refused copies of the ledger (it deleted it before).")
    {
        public string Bookie { get; } = bookie;
    }
}
