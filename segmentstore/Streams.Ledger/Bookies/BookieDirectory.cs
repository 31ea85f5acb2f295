using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Streams.Coordination.Metadata;

namespace Streams.Ledger.Bookies;

/// <summary>
/// The bookies that exist and a client for each. A bookie registers an ephemeral node under
/// <see cref="AvailablePath"/> named by its id, "host:port" of its raw data port, so a client can reach any bookie
/// named in ledger metadata even after it left the registry. Clients are cached and replaced once broken.
/// </summary>
public sealed class BookieDirectory : IAsyncDisposable
{
    public const string AvailablePath = "/bookies/available";

    private readonly IMetadataStore _store;
    private readonly TimeSpan _timeout;
    private readonly ConcurrentDictionary<string, Lazy<Task<IBookieClient>>> _clients = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IBookieClient> _local = new(StringComparer.Ordinal);

    public BookieDirectory(IMetadataStore store, TimeSpan requestTimeout)
    {
        _store = store;
        _timeout = requestTimeout;
    }

    /// <summary>Serves <paramref name="client"/> for its bookie id (an in-process bookie) instead of connecting.</summary>
    public void AddLocal(IBookieClient client) => _local[client.BookieId] = client;

    /// <summary>Registers a bookie as available for as long as the store's session lasts.</summary>
    public static ValueTask<bool> RegisterAsync(IMetadataStore store, string bookieId, CancellationToken cancellationToken = default) =>
        store.TryCreateEphemeralAsync($"{AvailablePath}/{bookieId}", Encoding.UTF8.GetBytes(bookieId), cancellationToken);

    public async Task<IReadOnlyList<string>> AvailableAsync(CancellationToken cancellationToken = default) =>
        [.. (await _store.GetChildrenAsync(AvailablePath, cancellationToken)).Concat(_local.Keys).Distinct(StringComparer.Ordinal)];

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

    private async Task<IBookieClient> ConnectAsync(string bookieId)
    {
        var colon = bookieId.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(bookieId.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            throw new BookieUnavailableException(bookieId, "is not a host:port bookie id");
        }

        return await RawBookieClient.ConnectAsync(bookieId, bookieId[..colon], port, _timeout);
    }
}
