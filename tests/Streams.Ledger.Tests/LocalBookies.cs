using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Contracts.Bookie;
using Streams.Coordination.Metadata;
using Streams.Hosting;
using Streams.Ledger.Bookies;
using Streams.Testing;

namespace Streams.Ledger.Tests;

/// <summary>A bookie that can be taken down: every request then fails as if the bookie were unreachable.</summary>
internal sealed class FaultyBookie(IBookieClient inner) : IBookieClient
{
    public volatile bool Down;

    public string BookieId => inner.BookieId;

    public Task<BookieStatus> AddAsync(long ledger, long entry, long lac, uint crc, bool recovery, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
        Down ? Unavailable<BookieStatus>() : inner.AddAsync(ledger, entry, lac, crc, recovery, payload, cancellationToken);

    public Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default) =>
        Down ? Unavailable<BookieEntry>() : inner.ReadAsync(ledger, entry, cancellationToken);

    public Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default) =>
        Down ? Unavailable<BookieLedgerState>() : inner.ReadLacAsync(ledger, cancellationToken);

    public Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default) =>
        Down ? Unavailable<BookieLedgerState>() : inner.FenceAsync(ledger, cancellationToken);

    public Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default) =>
        Down ? Unavailable<BookieStatus>() : inner.DeleteAsync(ledger, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private Task<T> Unavailable<T>() => Task.FromException<T>(new BookieUnavailableException(BookieId, "down (injected)"));
}

/// <summary>N bookies in this process, each with its own journal, behind one metadata store and directory.</summary>
internal sealed class LocalBookies : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("ledger-test");
    private readonly List<BookieStore> _stores = [];

    private LocalBookies()
    {
        Metadata = FileMetadataStore.Open(_dir.Sub("metadata"));
        Directory = new BookieDirectory(Metadata, TimeSpan.FromSeconds(5));
    }

    public IMetadataStore Metadata { get; }

    public BookieDirectory Directory { get; }

    public List<FaultyBookie> Bookies { get; } = [];

    public static async Task<LocalBookies> StartAsync(int count)
    {
        var cluster = new LocalBookies();
        for (var i = 0; i < count; i++)
        {
            var store = await BookieStore.OpenAsync(new BookieOptions { DataDirectory = cluster._dir.Sub("bookie" + i), JournalSegmentSize = new ByteSize(1L << 24) }, NullLogger.Instance);
            cluster._stores.Add(store);
            var bookie = new FaultyBookie(new LocalBookieClient($"bookie-{i}:{3180 + i}", store));
            cluster.Bookies.Add(bookie);
            cluster.Directory.AddLocal(bookie);
        }

        return cluster;
    }

    public LedgerManager Manager(int e, int qw, int qa) =>
        new(Metadata, Directory, new LedgerOptions { EnsembleSize = e, WriteQuorum = qw, AckQuorum = qa }, NullLogger.Instance);

    public FaultyBookie Bookie(string id) => Bookies.Single(b => b.BookieId == id);

    public BookieStore StoreOf(string id) => _stores[Bookies.FindIndex(b => b.BookieId == id)];

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        await Metadata.DisposeAsync();
        _dir.Dispose();
    }
}
