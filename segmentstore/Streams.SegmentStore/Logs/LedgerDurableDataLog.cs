using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Streams.Coordination.Metadata;
using Streams.Ledger;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A container's durable log on replicated ledgers (Tier 1): a chain of ledgers, each written by one owner.
/// <para>
/// Taking ownership (<see cref="OpenAsync"/>): recover every ledger of the chain — which fences it on its bookies,
/// so the previous owner, alive or not, can add nothing more — then start a new ledger and record it in the chain by
/// compare-and-set. A previous owner that tries to extend or truncate the chain afterwards fails its compare-and-set;
/// one that keeps adding to its ledger is refused by the bookies. Either way its log fails and its container stops.
/// </para>
/// <para>
/// Rollover: when the current ledger passes the rollover size, appends queue while the ledger's pending entries
/// finish, it is closed, and a new ledger joins the chain; the queued appends then go to it, in order. A record is
/// never in a later ledger while an earlier record is still unacknowledged, so recovery never sees a gap.
/// </para>
/// <para>
/// Chain updates (rollover, truncation) are serialized: one at a time, each applied to the chain as this owner last
/// wrote it. A compare-and-set that fails is looked into before anything is concluded: a chain stored at another epoch
/// means a new owner, and this log fails; one at this owner's epoch can only be this owner's own write whose answer was
/// lost (the store's connection broke after it took the write), and the update is applied again on top of it. So a
/// container never reports lost ownership because of itself.
/// </para>
/// <para>
/// Recovery reads ahead (<see cref="LedgerManager.ReadRangeAsync"/>): a window of reads is outstanding on the bookies
/// while the container replays, bounded by the read-ahead size; records still come back one by one, in order, each
/// checked as a single read checks it.
/// </para>
/// </summary>
public sealed class LedgerDurableDataLog : IDurableDataLog
{
    private const int OpenAttempts = 5;

    /// <summary>
    /// Rebases of one chain update on this owner's own earlier write. One is all a lost answer needs; more means the
    /// chain keeps changing at this epoch, which only a bug can cause, and the log fails rather than loop.
    /// </summary>
    private const int ChainUpdateAttempts = 3;

    /// <summary>Ledgers of the chain recovered at once when taking ownership: each is a few metadata round trips.</summary>
    private const int OpenRecoveryConcurrency = 8;

    private readonly int _containerId;
    private readonly LedgerManager _ledgers;
    private readonly IMetadataStore _store;
    private readonly long _configuredRolloverSize;
    private readonly long _readAheadSize;
    private long _rolloverSize;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _chainLock = new(1, 1);
    private readonly Queue<(ReadOnlyMemory<byte> Record, TaskCompletionSource<LogAddress> Done)> _queued = new();
    private readonly Dictionary<long, LedgerMetadata> _closed = [];
    private LogMetadata _metadata = LogMetadata.Empty;
    private long _version;
    private LedgerWriter? _current;
    private bool _rolling;
    private Exception? _failure;

    /// <param name="containerId">The container whose log this is.</param>
    /// <param name="ledgers">The ledger client.</param>
    /// <param name="rolloverSize">Bytes after which the log moves to a new ledger.</param>
    /// <param name="readAheadSize">Bytes of records recovery keeps in flight ahead of the replay.</param>
    /// <param name="logger">The log's logger.</param>
    public LedgerDurableDataLog(int containerId, LedgerManager ledgers, long rolloverSize, long readAheadSize, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(readAheadSize, 1);
        _containerId = containerId;
        _ledgers = ledgers;
        _store = ledgers.Store;
        _configuredRolloverSize = _rolloverSize = rolloverSize;
        _readAheadSize = readAheadSize;
        _logger = logger;
    }

    /// <summary>A frame of up to the largest event plus framing; bookies accept entries of 10 MiB.</summary>
    public int MaxRecordSize => 10 * 1024 * 1024;

    public string Path => LogMetadata.PathOf(_containerId);

    public long Epoch
    {
        get
        {
            lock (_lock)
            {
                return _metadata.Epoch;
            }
        }
    }

    public async ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default)
    {
        long epoch;
        lock (_lock)
        {
            if (_failure is { } failure)
            {
                throw failure;
            }

            epoch = _metadata.Epoch;
        }

        VersionedValue? stored;
        try
        {
            stored = await _store.GetAsync(Path, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"Container {_containerId} cannot confirm it still owns its log (metadata store unreachable: {e.Message}).", e);
        }

        var current = stored is { } value ? LogMetadata.FromJson(value.Data).Epoch : -1;
        if (current != epoch)
        {
            throw Fail(new InvalidOperationException($"Container {_containerId} lost ownership of its log: epoch {current} holds it, this owner has {epoch}."));
        }
    }

    public async ValueTask OpenAsync(CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            var stored = await _store.GetAsync(Path, cancellationToken);
            if (stored is null)
            {
                await _store.TryCreateAsync(Path, LogMetadata.Empty.ToJson(), cancellationToken);
                continue;
            }

            var metadata = LogMetadata.FromJson(stored.Value.Data);
            var recovered = new LedgerMetadata[metadata.Ledgers.Count];
            await Parallel.ForEachAsync(Enumerable.Range(0, recovered.Length),
                new ParallelOptions { MaxDegreeOfParallelism = OpenRecoveryConcurrency, CancellationToken = cancellationToken },
                async (i, ct) => recovered[i] = await _ledgers.RecoverAsync(metadata.Ledgers[i], ct));
            for (var i = 0; i < recovered.Length; i++)
            {
                _closed[metadata.Ledgers[i]] = recovered[i];
            }

            var writer = await _ledgers.CreateAsync(cancellationToken);
            var owned = metadata with { Epoch = metadata.Epoch + 1, Ledgers = [.. metadata.Ledgers, writer.LedgerId] };
            if (await _store.TrySetAsync(Path, owned.ToJson(), stored.Value.Version, cancellationToken) is { } version)
            {
                lock (_lock)
                {
                    (_metadata, _version, _current) = (owned, version, writer);
                }

                _logger.LogInformation("Container {Container} owns its log at epoch {Epoch}: {Ledgers} ledgers, writing ledger {Ledger}.",
                    _containerId, owned.Epoch, owned.Ledgers.Count, writer.LedgerId);
                return;
            }

            // Someone else changed the chain meanwhile (another owner, or our predecessor rolling over): start again.
            await _ledgers.DeleteAsync(writer.LedgerId, cancellationToken);
            if (attempt == OpenAttempts)
            {
                throw new InvalidOperationException($"Container {_containerId}: the log's metadata kept changing while taking ownership; another owner is active.");
            }
        }
    }

    public ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default)
    {
        if (record.Length > MaxRecordSize)
        {
            // Refused here, with the reason: sent on, bookies would refuse it, and that reads like bookie failures.
            return ValueTask.FromException<LogAddress>(new ArgumentException(
                $"Container {_containerId}: a log record of {record.Length} bytes exceeds the limit of {MaxRecordSize} bytes."));
        }

        lock (_lock)
        {
            if (_failure is { } failure)
            {
                return ValueTask.FromException<LogAddress>(failure);
            }

            var writer = _current ?? throw new InvalidOperationException("The log is not open.");
            if (!_rolling && writer.Length >= _rolloverSize)
            {
                // Off this thread: the rollover takes this lock again when it switches ledgers.
                _rolling = true;
                _ = Task.Run(() => RolloverAsync(writer), CancellationToken.None);
            }

            if (_rolling)
            {
                var done = new TaskCompletionSource<LogAddress>(TaskCreationOptions.RunContinuationsAsynchronously);
                _queued.Enqueue((record, done));
                return new ValueTask<LogAddress>(done.Task);
            }

            return new ValueTask<LogAddress>(AddressOf(writer, writer.AddAsync(record)));
        }
    }

    public async IAsyncEnumerable<LogRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        LogMetadata metadata;
        lock (_lock)
        {
            metadata = _metadata;
        }

        foreach (var ledger in metadata.Ledgers)
        {
            if (!_closed.TryGetValue(ledger, out var closed))
            {
                continue; // our own, new ledger: empty when the log is opened
            }

            var first = Math.Max(0, ledger == metadata.TruncatedLedger ? metadata.TruncatedEntry : 0);
            await foreach (var read in _ledgers.ReadRangeAsync(closed, ledger, first, closed.LastEntryId, _readAheadSize, cancellationToken))
            {
                yield return Record(new LogAddress(ledger, read.EntryId), read);
            }
        }
    }

    public async ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default)
    {
        LedgerMetadata? metadata;
        lock (_lock)
        {
            metadata = _current?.LedgerId == address.LedgerId ? _current.Metadata : _closed.GetValueOrDefault(address.LedgerId);
        }

        metadata ??= (await _ledgers.ReadMetadataAsync(address.LedgerId, cancellationToken)).Metadata;
        try
        {
            return Record(address, await _ledgers.ReadAsync(metadata, address.LedgerId, address.EntryId, cancellationToken));
        }
        catch (LedgerException e)
        {
            throw new DataCorruptionException($"Container {_containerId} log record {address}: {e.Message}");
        }
    }

    /// <summary>Drops every ledger wholly before <paramref name="upTo"/> from the chain (compare-and-set), then deletes them.</summary>
    public async ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default)
    {
        // Never backwards: a truncation behind the recorded point (or a repeat of it) changes nothing.
        var (before, after) = await UpdateChainAsync(
            metadata => new LogAddress(metadata.TruncatedLedger, metadata.TruncatedEntry) >= upTo ? metadata : metadata with
            {
                Ledgers = [.. metadata.Ledgers.Where(l => l >= upTo.LedgerId)], TruncatedLedger = upTo.LedgerId, TruncatedEntry = upTo.EntryId,
            },
            (before, after) =>
            {
                foreach (var ledger in before.Ledgers.Except(after.Ledgers))
                {
                    _closed.Remove(ledger);
                }
            },
            "truncation", cancellationToken)
            ?? throw Fail(new InvalidOperationException($"Container {_containerId} lost ownership of its log (truncation refused)."));

        foreach (var ledger in before.Ledgers.Except(after.Ledgers))
        {
            await _ledgers.DeleteAsync(ledger, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        LedgerWriter? writer;
        lock (_lock)
        {
            writer = _current;
            _failure ??= new ObjectDisposedException($"log of container {_containerId}");
        }

        if (writer is not null)
        {
            try
            {
                // A clean close spares the next owner a recovery.
                await writer.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception e) when (e is LedgerException or TimeoutException or InvalidOperationException)
            {
                _logger.LogDebug("Container {Container}: ledger {Ledger} not closed cleanly: {Error}", _containerId, writer.LedgerId, e.Message);
            }
        }
    }

    private async Task RolloverAsync(LedgerWriter old)
    {
        // The next ledger first: if it cannot be made (too few bookies), the log stays on the current one.
        LedgerWriter writer;
        try
        {
            writer = await _ledgers.CreateAsync();
        }
        catch (NotEnoughBookiesException e)
        {
            _logger.LogWarning("Container {Container}: rollover postponed, staying on ledger {Ledger}: {Reason}", _containerId, old.LedgerId, e.Message);
            lock (_lock)
            {
                _rolloverSize = old.Length + _rolloverSize;
                _rolling = false;
                while (_queued.TryDequeue(out var queued))
                {
                    var address = AddressOf(old, old.AddAsync(queued.Record));
                    _ = address.ContinueWith(t => Complete(queued.Done, t), TaskScheduler.Default);
                }
            }

            return;
        }
        catch (Exception e)
        {
            // The next ledger could not be made (e.g. the metadata store is unreachable): the log fails, and so do the
            // appends queued for the new ledger. Left alone, they would wait for a rollover that never ends.
            FailQueued(Fail(e));
            return;
        }

        try
        {
            await old.CloseAsync();
            var extended = await UpdateChainAsync(
                metadata => metadata.Ledgers.Contains(writer.LedgerId) ? metadata : metadata with { Ledgers = [.. metadata.Ledgers, writer.LedgerId] },
                (_, _) =>
                {
                    _current = writer;
                    _closed[old.LedgerId] = old.Metadata;
                    _rolloverSize = _configuredRolloverSize;
                    _rolling = false;
                    while (_queued.TryDequeue(out var queued))
                    {
                        var address = AddressOf(writer, writer.AddAsync(queued.Record));
                        _ = address.ContinueWith(t => Complete(queued.Done, t), TaskScheduler.Default);
                    }
                },
                "rollover", CancellationToken.None);
            if (extended is null)
            {
                // Only now is the new ledger surely outside the chain: after a store error it may be in it, and stays.
                await _ledgers.DeleteAsync(writer.LedgerId);
                throw new InvalidOperationException($"Container {_containerId} lost ownership of its log (rollover refused).");
            }

            _logger.LogDebug("Container {Container} rolled its log over to ledger {Ledger}.", _containerId, writer.LedgerId);
        }
        catch (Exception e)
        {
            FailQueued(Fail(e));
        }
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the chain by compare-and-set, one update at a time, and then, under the
    /// state lock, <paramref name="applied"/> (given the chain before and after). A change that returns its input
    /// writes nothing. Returns the chain as this owner had it before (ahead of any rebase, so whatever it dropped is
    /// known) and after; null once a new owner holds the log (the log has failed). Store errors are thrown as they are.
    /// </summary>
    private async Task<(LogMetadata Before, LogMetadata After)?> UpdateChainAsync(
        Func<LogMetadata, LogMetadata> change, Action<LogMetadata, LogMetadata> applied, string what, CancellationToken cancellationToken)
    {
        await _chainLock.WaitAsync(cancellationToken);
        try
        {
            LogMetadata before, current;
            long version;
            lock (_lock)
            {
                if (_failure is { } failure)
                {
                    throw failure;
                }

                (before, version) = (_metadata, _version);
            }

            current = before;
            for (var attempt = 1; ; attempt++)
            {
                var changed = change(current);
                if (!ReferenceEquals(changed, current))
                {
                    if (await _store.TrySetAsync(Path, changed.ToJson(), version, cancellationToken) is not { } next)
                    {
                        var stored = await _store.GetAsync(Path, cancellationToken);
                        var holder = stored is { } value ? LogMetadata.FromJson(value.Data) : null;
                        if (holder is null || holder.Epoch != current.Epoch)
                        {
                            Fail(new InvalidOperationException(
                                $"Container {_containerId} lost ownership of its log ({what} refused): epoch {holder?.Epoch ?? -1} holds it, this owner has {current.Epoch}."));
                            return null;
                        }

                        if (attempt == ChainUpdateAttempts)
                        {
                            throw Fail(new InvalidOperationException($"Container {_containerId}: the log's chain kept changing at this owner's epoch {current.Epoch} during a {what}."));
                        }

                        _logger.LogInformation("Container {Container}: the log's chain moved to version {Version} at this owner's epoch (an earlier update whose answer was lost); applying the {What} on top of it.",
                            _containerId, stored!.Value.Version, what);
                        (current, version) = (holder, stored.Value.Version);
                        lock (_lock)
                        {
                            (_metadata, _version) = (current, version);
                        }

                        continue;
                    }

                    version = next;
                }

                lock (_lock)
                {
                    (_metadata, _version) = (changed, version);
                    applied(before, changed);
                }

                return (before, changed);
            }
        }
        finally
        {
            _chainLock.Release();
        }
    }

    private void FailQueued(Exception failure)
    {
        lock (_lock)
        {
            _rolling = false;
            while (_queued.TryDequeue(out var queued))
            {
                queued.Done.TrySetException(failure);
            }
        }
    }

    private static void Complete(TaskCompletionSource<LogAddress> done, Task<LogAddress> result)
    {
        if (result.IsCompletedSuccessfully)
        {
            done.TrySetResult(result.Result);
        }
        else
        {
            done.TrySetException(result.Exception?.InnerException ?? new LedgerException("The append failed."));
        }
    }

    private static async Task<LogAddress> AddressOf(LedgerWriter writer, Task<long> add) => new(writer.LedgerId, await add);

    private Exception Fail(Exception failure)
    {
        lock (_lock)
        {
            _failure ??= failure;
            return _failure;
        }
    }

    private static LogRecord Record(LogAddress address, LedgerEntry entry) =>
        new(address, new EntryMemory(entry.Data), entry.Data.Payload.Length);

    /// <summary>Presents a ledger entry's payload as the memory of a log record; disposing releases the entry.</summary>
    private sealed class EntryMemory(BookieEntry entry) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = MemoryMarshal.AsMemory(entry.Payload);

        public void Dispose() => entry.Dispose();
    }
}
