using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Streams.Common.Hashing;
using Streams.Coordination.Metadata;
using Streams.Contracts.Bookie;
using Streams.Ledger.Bookies;

namespace Streams.Ledger;

/// <summary>An entry read from a ledger.</summary>
public readonly record struct LedgerEntry(long EntryId, BookieEntry Data) : IDisposable
{
    public void Dispose() => Data.Dispose();
}

/// <summary>
/// Creates, reads, recovers and deletes ledgers; hands out writers. Ledger ids come from sequential nodes, so they
/// are never reused.
/// <para>
/// Recovery (opening a ledger someone else was writing): mark it in recovery (a compare-and-set that also stops the
/// old writer from changing its ensemble), fence it on the bookies of its last fragment (they refuse the old writer's
/// adds from then on), take the highest last-add-confirmed they report, then read forward: every entry still found
/// is re-replicated to its write set, and the first entry that enough bookies positively lack ends the ledger.
/// Finally the ledger is closed at that entry. Every acknowledged entry survives: it was on Qa bookies of its write
/// set, so at least one of any Qw - Qa + 1 of them has it.
/// </para>
/// <para>
/// Every bookie call has a deadline (<see cref="LedgerOptions.ReadTimeout"/> for reads, fences and deletes,
/// <see cref="LedgerOptions.AddTimeout"/> for adds) and any failure counts as that bookie being unavailable, so a
/// frozen bookie slows a call by at most one deadline. Reads ask the bookies that answered lately first.
/// </para>
/// </summary>
public sealed class LedgerManager
{
    /// <summary>
    /// Reads <see cref="ReadRangeAsync"/> keeps outstanding at most, whatever the byte budget: 64 covers a loopback or
    /// LAN round trip at small entries (a read is tens of microseconds of bookie work); more only queues on the bookies.
    /// </summary>
    public const int MaxReadsAhead = 64;

    private readonly LedgerOptions _options;
    private readonly ILogger _logger;

    public LedgerManager(IMetadataStore store, BookieDirectory bookies, LedgerOptions options, ILogger logger)
    {
        options.Validate();
        Store = store;
        Bookies = bookies;
        _options = options;
        _logger = logger;
    }

    public IMetadataStore Store { get; }

    public BookieDirectory Bookies { get; }

    public LedgerOptions Options => _options;

    /// <summary>
    /// Creates a ledger on a random ensemble of available bookies and returns its writer. With fewer than E bookies
    /// available but at least Qa, the ledger is striped over the bookies there are (E and Qw shrink, Qa stays, so an
    /// acknowledgement still means Qa durable copies): a cluster keeps taking writes while a bookie is down.
    /// </summary>
    public async Task<LedgerWriter> CreateAsync(CancellationToken cancellationToken = default)
    {
        var (healthy, suspect) = await Bookies.CandidatesAsync(cancellationToken);
        var available = healthy.Concat(suspect).ToList();
        if (available.Count < _options.AckQuorum)
        {
            throw new NotEnoughBookiesException($"A ledger needs at least {_options.AckQuorum} bookies (Qa); {available.Count} are available ({string.Join(", ", available)}).");
        }

        var ensembleSize = Math.Min(_options.EnsembleSize, available.Count);
        var writeQuorum = Math.Min(_options.WriteQuorum, ensembleSize);
        if (ensembleSize < _options.EnsembleSize)
        {
            _logger.LogWarning("Only {Available} bookies are available: the new ledger uses E={E}, Qw={Qw}, Qa={Qa} instead of E={WantedE}.",
                available.Count, ensembleSize, writeQuorum, _options.AckQuorum, _options.EnsembleSize);
        }

        // Bookies that answer first; a suspect (one that failed lately) only to make up the ensemble.
        var ensemble = healthy.OrderBy(_ => Random.Shared.Next()).Concat(suspect.OrderBy(_ => Random.Shared.Next())).Take(ensembleSize).ToList();
        var metadata = new LedgerMetadata(ensembleSize, writeQuorum, _options.AckQuorum, LedgerState.Open, -1, 0,
            [new LedgerFragment(0, ensemble)], DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var path = await Store.CreateSequentialAsync(LedgerMetadata.Prefix, metadata.ToJson(), cancellationToken: cancellationToken);
        var id = LedgerMetadata.IdOf(path);
        _logger.LogDebug("Created ledger {Ledger} on {Ensemble}.", id, string.Join(", ", ensemble));
        return new LedgerWriter(this, id, metadata, 0, _logger);
    }

    public async Task<(LedgerMetadata Metadata, long Version)> ReadMetadataAsync(long ledgerId, CancellationToken cancellationToken = default)
    {
        var stored = await Store.GetAsync(LedgerMetadata.PathOf(ledgerId), cancellationToken)
            ?? throw new LedgerException($"Ledger {ledgerId} does not exist.");
        return (LedgerMetadata.FromJson(stored.Data), stored.Version);
    }

    /// <summary>Reads one entry from any bookie of its write set; the payload's CRC is checked end to end.</summary>
    public async Task<LedgerEntry> ReadAsync(LedgerMetadata metadata, long ledgerId, long entryId, CancellationToken cancellationToken = default)
    {
        var (entry, _) = await TryReadAsync(metadata, ledgerId, entryId, cancellationToken);
        return entry ?? throw new LedgerException($"Entry {entryId} of ledger {ledgerId} could not be read from any of {string.Join(", ", metadata.WriteSetOf(entryId))}.");
    }

    /// <summary>
    /// Reads entries <paramref name="first"/> to <paramref name="last"/> of a closed ledger in order, each as
    /// <see cref="ReadAsync"/> reads it (any copy of its write set, CRC checked), with reads issued ahead of the
    /// consumer: up to <paramref name="readAheadBytes"/> of entries outstanding, each counted at the largest entry seen
    /// so far (one read at a time until the first arrives), and never more than <see cref="MaxReadsAhead"/>. A failed
    /// read throws where its entry would have been yielded; reads already issued are awaited and released.
    /// </summary>
    public async IAsyncEnumerable<LedgerEntry> ReadRangeAsync(LedgerMetadata metadata, long ledgerId, long first, long last, long readAheadBytes,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var pending = new Queue<Task<LedgerEntry>>();
        var next = first;
        long largest = 0;
        try
        {
            while (next <= last || pending.Count > 0)
            {
                while (next <= last && pending.Count < MaxReadsAhead && (pending.Count == 0 || (largest > 0 && (pending.Count + 1) * largest <= readAheadBytes)))
                {
                    pending.Enqueue(ReadAsync(metadata, ledgerId, next++, cancellationToken));
                }

                var entry = await pending.Dequeue();
                largest = Math.Max(largest, entry.Data.Payload.Length);
                yield return entry;
            }
        }
        finally
        {
            // Not cancelled: each read ends within the request timeout, and what it returns must be released.
            while (pending.TryDequeue(out var read))
            {
                try
                {
                    (await read).Dispose();
                }
                catch (Exception)
                {
                    // Past an entry the consumer no longer wants (it stopped, or an earlier read failed): its failure is moot.
                }
            }
        }
    }

    /// <summary>Closes a ledger someone else may still be writing: fence, recover the tail, close. Idempotent.</summary>
    public async Task<LedgerMetadata> RecoverAsync(long ledgerId, CancellationToken cancellationToken = default)
    {
        using var activity = LedgerTracing.Source.StartActivity("RecoverLedger");
        activity?.SetTag("streams.ledger", ledgerId);
        try
        {
            var recovered = await FenceAndCloseAsync(ledgerId, cancellationToken);
            activity?.SetTag("streams.ledger.last_entry", recovered.LastEntryId);
            return recovered;
        }
        catch (Exception e) when (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }

    private async Task<LedgerMetadata> FenceAndCloseAsync(long ledgerId, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (metadata, version) = await ReadMetadataAsync(ledgerId, cancellationToken);
            if (metadata.State == LedgerState.Closed)
            {
                return metadata;
            }

            if (metadata.State == LedgerState.Open)
            {
                var inRecovery = metadata with { State = LedgerState.InRecovery };
                if (await Store.TrySetAsync(LedgerMetadata.PathOf(ledgerId), inRecovery.ToJson(), version, cancellationToken) is not { } next)
                {
                    continue;
                }

                (metadata, version) = (inRecovery, next);
            }

            var last = await RecoverTailAsync(metadata, ledgerId, cancellationToken);
            var closed = metadata with { State = LedgerState.Closed, LastEntryId = last, Length = -1 };
            if (await Store.TrySetAsync(LedgerMetadata.PathOf(ledgerId), closed.ToJson(), version, cancellationToken) is not null)
            {
                _logger.LogInformation("Recovered ledger {Ledger}: closed at entry {Last}.", ledgerId, last);
                return closed;
            }
        }
    }

    /// <summary>
    /// Deletes a ledger's entries on every bookie that may hold some, then its metadata. The metadata goes only at the
    /// version whose bookies were cleaned: if a repair recorded a new bookie meanwhile (auto-recovery), that one is
    /// cleaned too before the ledger is gone.
    /// </summary>
    public async Task DeleteAsync(long ledgerId, CancellationToken cancellationToken = default)
    {
        var cleaned = new HashSet<string>(StringComparer.Ordinal);
        while (await Store.GetAsync(LedgerMetadata.PathOf(ledgerId), cancellationToken) is { } stored)
        {
            var metadata = LedgerMetadata.FromJson(stored.Data);
            foreach (var bookie in metadata.Fragments.SelectMany(f => f.Bookies).Distinct(StringComparer.Ordinal))
            {
                if (!cleaned.Add(bookie))
                {
                    continue;
                }

                try
                {
                    await Bookies.CallAsync(bookie, ledgerId, static (client, ledger, token) => client.DeleteAsync(ledger, token), _options.ReadTimeout, cancellationToken);
                }
                catch (BookieUnavailableException e)
                {
                    // Its copy stays until that bookie is cleaned up; the ledger is gone for every reader.
                    _logger.LogWarning("Ledger {Ledger}: bookie {Bookie} could not delete its entries: {Error}", ledgerId, bookie, e.Message);
                }
            }

            if (await Store.TryDeleteAsync(LedgerMetadata.PathOf(ledgerId), stored.Version, cancellationToken))
            {
                return;
            }
        }
    }

    private async Task<long> RecoverTailAsync(LedgerMetadata metadata, long ledgerId, CancellationToken cancellationToken)
    {
        var last = metadata.Fragments[^1];
        var fenced = await Task.WhenAll(last.Bookies.Select(async bookie =>
        {
            try
            {
                return (BookieLedgerState?)await Bookies.CallAsync(bookie, ledgerId, static (client, ledger, token) => client.FenceAsync(ledger, token), _options.ReadTimeout, cancellationToken);
            }
            catch (BookieUnavailableException)
            {
                return null;
            }
        }));

        var answered = fenced.Where(f => f is { Status: BookieStatus.Ok or BookieStatus.NoSuchLedger }).Select(f => f!.Value).ToList();
        var needed = metadata.EnsembleSize - metadata.AckQuorum + 1;
        if (answered.Count < needed)
        {
            throw new LedgerException($"Cannot recover ledger {ledgerId}: {answered.Count} of its bookies answered the fence, {needed} are needed.");
        }

        var entryId = Math.Max(answered.Max(f => f.LastAddConfirmed), last.FirstEntryId - 1) + 1;
        while (true)
        {
            var (entry, absent) = await TryReadAsync(metadata, ledgerId, entryId, cancellationToken);
            if (entry is null)
            {
                if (absent)
                {
                    return entryId - 1;
                }

                throw new LedgerException($"Cannot recover ledger {ledgerId}: entry {entryId} is neither readable nor known to be absent.");
            }

            using (entry)
            {
                await ReplicateAsync(metadata, ledgerId, entryId, entry.Value.Data, cancellationToken);
            }

            entryId++;
        }
    }

    /// <summary>Writes a recovered entry to its whole write set (recovery adds pass the fence); needs Qa copies.</summary>
    private async Task ReplicateAsync(LedgerMetadata metadata, long ledgerId, long entryId, BookieEntry entry, CancellationToken cancellationToken)
    {
        var written = await Task.WhenAll(metadata.WriteSetOf(entryId).Select(async bookie =>
        {
            try
            {
                return await Bookies.CallAsync(
                    bookie,
                    (Ledger: ledgerId, Entry: entryId, Data: entry),
                    static (client, s, token) => client.AddAsync(s.Ledger, s.Entry, s.Data.LastAddConfirmed, s.Data.Crc, recovery: true, new EntryPayload(s.Data.Payload), token),
                    _options.AddTimeout,
                    cancellationToken) == BookieStatus.Ok;
            }
            catch (BookieUnavailableException)
            {
                return false;
            }
        }));

        if (written.Count(ok => ok) < metadata.AckQuorum)
        {
            throw new LedgerException($"Cannot recover ledger {ledgerId}: entry {entryId} reached only {written.Count(ok => ok)} bookies.");
        }
    }

    /// <summary>
    /// Reads an entry from its write set (but the bookies <paramref name="skip"/> names), each copy within the read
    /// deadline and checked against its CRC. Returns it, or null with <c>absent</c> true when enough bookies
    /// (Qw - Qa + 1) positively lack it, so it was never acknowledged.
    /// </summary>
    internal async Task<(LedgerEntry? Entry, bool Absent)> TryReadAsync(
        LedgerMetadata metadata, long ledgerId, long entryId, CancellationToken cancellationToken, Func<string, bool>? skip = null)
    {
        var lacking = 0;
        foreach (var bookie in ReadOrder(metadata.WriteSetOf(entryId)))
        {
            if (skip?.Invoke(bookie) == true)
            {
                continue;
            }

            try
            {
                var entry = await Bookies.CallAsync(bookie, (Ledger: ledgerId, Entry: entryId), static (client, s, token) => ReadOwnedAsync(client, s.Ledger, s.Entry, token), _options.ReadTimeout, cancellationToken);
                if (entry.Status == BookieStatus.Ok && Crc32C.Compute(entry.Payload.Span) == entry.Crc)
                {
                    return (new LedgerEntry(entryId, entry), false);
                }

                if (entry.Status is BookieStatus.NoSuchEntry or BookieStatus.NoSuchLedger)
                {
                    lacking++;
                }
                else
                {
                    _logger.LogWarning("Ledger {Ledger} entry {Entry}: bookie {Bookie} answered {Status}; trying another copy.", ledgerId, entryId, bookie, entry.Status == BookieStatus.Ok ? "a payload failing its checksum" : entry.Status.ToString());
                }

                entry.Dispose();
            }
            catch (BookieUnavailableException)
            {
            }
        }

        return (null, lacking >= metadata.WriteQuorum - metadata.AckQuorum + 1);
    }

    /// <summary>A write set in the order to read it: bookies that answered lately first, suspects last.</summary>
    private IEnumerable<string> ReadOrder(IReadOnlyList<string> writeSet)
    {
        List<string>? suspects = null;
        foreach (var bookie in writeSet)
        {
            if (Bookies.IsSuspect(bookie))
            {
                (suspects ??= []).Add(bookie);
            }
            else
            {
                yield return bookie;
            }
        }

        foreach (var bookie in suspects ?? [])
        {
            yield return bookie;
        }
    }

    /// <summary>Reads an entry; one that arrives after its caller gave up (the deadline passed) is released.</summary>
    private static Task<BookieEntry> ReadOwnedAsync(IBookieClient client, long ledgerId, long entryId, CancellationToken cancellationToken)
    {
        var read = client.ReadAsync(ledgerId, entryId, cancellationToken);
        _ = read.ContinueWith(
            static (t, state) =>
            {
                if (((CancellationToken)state!).IsCancellationRequested)
                {
                    t.Result.Dispose();
                }
            },
            cancellationToken,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return read;
    }
}
