using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Streams.Coordination.Metadata;

namespace Streams.Ledger.Bookies;

/// <summary>
/// The bookies that exist, a client for each, and which of them failed lately. A bookie registers an ephemeral node
/// under <see cref="AvailablePath"/> named by its id, "host:port" of its raw data port, so a client can reach any
/// bookie named in ledger metadata even after it left the registry. Clients are cached and replaced once broken.
/// <para>
/// Failures are never permanent. A bookie that failed a call is suspect until it answers again: suspects are chosen
/// for new ensembles only when there are not enough others, never as replacements before a probe gets an answer,
/// and reads try them last. A failed connection is not retried for <see cref="LedgerOptions.RetryDelay"/> (calls
/// fail at once meanwhile, so a dead bookie costs no connection storm and a frozen one no wait); after that the next
/// call connects again, and a restarted bookie is back as soon as it answers.
/// </para>
/// </summary>
public sealed class BookieDirectory : IAsyncDisposable
{
    public const string AvailablePath = "/bookies/available";

    /// <summary>The ledger a probe asks the LAC of: ids are 10-digit sequence numbers, so this one never exists.</summary>
    private const long ProbeLedger = long.MaxValue;

    private readonly IMetadataStore _store;
    private readonly LedgerOptions _options;
    private readonly ConcurrentDictionary<string, Lazy<Task<IBookieClient>>> _clients = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _connectFailedAt = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Suspicion> _suspects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IBookieClient> _local = new(StringComparer.Ordinal);

    /// <summary>A directory whose connections time out after <paramref name="requestTimeout"/>; other settings are the defaults.</summary>
    public BookieDirectory(IMetadataStore store, TimeSpan requestTimeout)
        : this(store, new LedgerOptions { AddTimeout = requestTimeout, ReadTimeout = requestTimeout })
    {
    }

    public BookieDirectory(IMetadataStore store, LedgerOptions options)
    {
        options.Validate();
        _store = store;
        _options = options;
    }

    /// <summary>The settings its calls follow: deadlines, retry delay, connection timeout.</summary>
    public LedgerOptions Options => _options;

    /// <summary>Serves <paramref name="client"/> for its bookie id (an in-process bookie) instead of connecting.</summary>
    public void AddLocal(IBookieClient client) => _local[client.BookieId] = client;

    /// <summary>Registers a bookie as available for as long as the store's session lasts.</summary>
    public static ValueTask<bool> RegisterAsync(IMetadataStore store, string bookieId, CancellationToken cancellationToken = default) =>
        store.TryCreateEphemeralAsync($"{AvailablePath}/{bookieId}", Encoding.UTF8.GetBytes(bookieId), cancellationToken);

    public async Task<IReadOnlyList<string>> AvailableAsync(CancellationToken cancellationToken = default) =>
        [.. (await _store.GetChildrenAsync(AvailablePath, cancellationToken)).Concat(_local.Keys).Distinct(StringComparer.Ordinal)];

    /// <summary>Whether the bookie failed a call and has not answered one since.</summary>
    public bool IsSuspect(string bookieId) => _suspects.ContainsKey(bookieId);

    /// <summary>
    /// The available bookies, those that answer first, then the suspects (each probed in the background, at most
    /// once per retry delay, so that one that came back is trusted again by the next caller).
    /// </summary>
    public async Task<(List<string> Healthy, List<string> Suspect)> CandidatesAsync(CancellationToken cancellationToken = default)
    {
        var available = await AvailableAsync(cancellationToken);
        List<string> healthy = [], suspect = [];
        foreach (var bookie in available)
        {
            if (IsSuspect(bookie))
            {
                suspect.Add(bookie);
                _ = ProbeAsync(bookie, CancellationToken.None);
            }
            else
            {
                healthy.Add(bookie);
            }
        }

        return (healthy, suspect);
    }

    /// <summary>
    /// Asks a suspect bookie for something cheap (the LAC of a ledger that never exists) within the read timeout;
    /// an answer clears it. At most one probe per bookie per retry delay; others wait for that one.
    /// </summary>
    public Task ProbeAsync(string bookieId, CancellationToken cancellationToken = default)
    {
        if (!_suspects.TryGetValue(bookieId, out var suspicion))
        {
            return Task.CompletedTask;
        }

        lock (suspicion)
        {
            var now = Environment.TickCount64;
            if (suspicion.Probe is null || (suspicion.Probe.IsCompleted && now - suspicion.ProbedAt >= _options.RetryDelay.TotalMilliseconds))
            {
                suspicion.ProbedAt = now;
                suspicion.Probe = CallAsync(bookieId, 0, static (client, _, token) => client.ReadLacAsync(ProbeLedger, token), _options.ReadTimeout, CancellationToken.None)
                    .ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            return suspicion.Probe.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Calls a bookie, connecting included, within <paramref name="deadline"/>. Every failure (no answer in time, a
    /// broken or disposed client, any exception the client throws) surfaces as <see cref="BookieUnavailableException"/>
    /// and makes the bookie suspect; an answer clears it. Throws <see cref="OperationCanceledException"/> only when
    /// <paramref name="cancellationToken"/> is cancelled. Never waits longer than the deadline, even on a client
    /// that ignores cancellation.
    /// </summary>
    public async Task<T> CallAsync<TState, T>(
        string bookieId, TState state, Func<IBookieClient, TState, CancellationToken, Task<T>> call, TimeSpan deadline, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(deadline);
        try
        {
            var result = await CallCoreAsync(bookieId, state, call, timeout.Token).WaitAsync(timeout.Token);
            Answered(bookieId);
            return result;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            var failure = e switch
            {
                BookieUnavailableException unavailable => unavailable,
                OperationCanceledException => new BookieUnavailableException(bookieId, $"no answer within {deadline.TotalSeconds:0.###} s", e),
                _ => new BookieUnavailableException(bookieId, $"call failed: {e.GetType().Name}: {e.Message}", e),
            };
            Failed(bookieId);
            throw failure;
        }
    }

    /// <summary>A client for a bookie; throws <see cref="BookieUnavailableException"/> if it cannot be reached.</summary>
    public async Task<IBookieClient> GetAsync(string bookieId, CancellationToken cancellationToken = default)
    {
        if (_local.TryGetValue(bookieId, out var local))
        {
            return local;
        }

        while (true)
        {
            var entry = _clients.GetOrAdd(bookieId, id => new Lazy<Task<IBookieClient>>(() => ConnectAsync(id)));
            try
            {
                var client = await entry.Value.WaitAsync(cancellationToken);
                if (client is RawBookieClient { IsBroken: true })
                {
                    if (_clients.TryRemove(new KeyValuePair<string, Lazy<Task<IBookieClient>>>(bookieId, entry)))
                    {
                        _ = client.DisposeAsync().AsTask();
                    }

                    continue;
                }

                return client;
            }
            catch (BookieUnavailableException)
            {
                _clients.TryRemove(new KeyValuePair<string, Lazy<Task<IBookieClient>>>(bookieId, entry));
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var entry in _clients.Values)
        {
            try
            {
                await (await entry.Value).DisposeAsync();
            }
            catch (BookieUnavailableException)
            {
            }
        }

        _clients.Clear();
    }

    private async Task<T> CallCoreAsync<TState, T>(string bookieId, TState state, Func<IBookieClient, TState, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var client = await GetAsync(bookieId, cancellationToken);
        return await call(client, state, cancellationToken);
    }

    // Not guarded by IsEmpty: on a ConcurrentDictionary that takes every bucket lock when the dictionary is empty.
    private void Answered(string bookieId) => _suspects.TryRemove(bookieId, out _);

    private void Failed(string bookieId) => _suspects.TryAdd(bookieId, new Suspicion());

    private async Task<IBookieClient> ConnectAsync(string bookieId)
    {
        var colon = bookieId.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(bookieId.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            throw new BookieUnavailableException(bookieId, "is not a host:port bookie id");
        }

        var since = _connectFailedAt.TryGetValue(bookieId, out var failedAt) ? Environment.TickCount64 - failedAt : long.MaxValue;
        if (since < _options.RetryDelay.TotalMilliseconds)
        {
            throw new BookieUnavailableException(bookieId, $"unreachable {since} ms ago; the next connection attempt waits {_options.RetryDelay.TotalSeconds:0.###} s");
        }

        try
        {
            var client = await RawBookieClient.ConnectAsync(bookieId, bookieId[..colon], port, _options.ConnectionTimeout);
            _connectFailedAt.TryRemove(bookieId, out _);
            return client;
        }
        catch (BookieUnavailableException)
        {
            _connectFailedAt[bookieId] = Environment.TickCount64;
            throw;
        }
    }

    /// <summary>A bookie that failed and has not answered since; its probe, if one ran.</summary>
    private sealed class Suspicion
    {
        public long ProbedAt { get; set; }

        public Task? Probe { get; set; }
    }
}
