using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Coordination.Metadata;
using Streams.Hosting;
using Streams.Ledger.Bookies;
using Streams.Testing;

namespace Streams.Ledger.Tests;

/// <summary>How an injected fault shows.</summary>
public enum BookieFault
{
    None,

    /// <summary>Every request fails at once as if the bookie were unreachable.</summary>
    Down,

    /// <summary>Requests are never answered, and cancelling them does nothing (a frozen bookie, a stuck client).</summary>
    Hang,

    /// <summary>Requests throw <see cref="ObjectDisposedException"/> (a client or store disposed under its callers).</summary>
    Disposed,
}

/// <summary>A bookie that can be taken down, frozen or disposed.</summary>
internal sealed class FaultyBookie(IBookieClient inner) : IBookieClient
{
    private volatile BookieFault _fault;

    public BookieFault Fault
    {
        get => _fault;
        set => _fault = value;
    }

    public bool Down
    {
        get => _fault == BookieFault.Down;
        set => _fault = value ? BookieFault.Down : BookieFault.None;
    }

    public string BookieId => inner.BookieId;

    public Task<BookieStatus> AddAsync(long ledger, long entry, long lac, uint crc, bool recovery, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
        Faulted<BookieStatus>() ?? inner.AddAsync(ledger, entry, lac, crc, recovery, payload, cancellationToken);

    public Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default) =>
        Faulted<BookieEntry>() ?? inner.ReadAsync(ledger, entry, cancellationToken);

    public Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default) =>
        Faulted<BookieLedgerState>() ?? inner.ReadLacAsync(ledger, cancellationToken);

    public Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default) =>
        Faulted<BookieLedgerState>() ?? inner.FenceAsync(ledger, cancellationToken);

    public Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default) =>
        Faulted<BookieStatus>() ?? inner.DeleteAsync(ledger, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private Task<T>? Faulted<T>() => _fault switch
    {
        BookieFault.Down => Task.FromException<T>(new BookieUnavailableException(BookieId, "down (injected)")),
        BookieFault.Hang => new TaskCompletionSource<T>().Task,
        BookieFault.Disposed => throw new ObjectDisposedException("BookieStore"),
        _ => null,
    };
}

/// <summary>N bookies in this process, each with its own journal, behind one metadata store and directory.</summary>
internal sealed class LocalBookies : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("ledger-test");
    private readonly List<BookieStore> _stores = [];

    private LocalBookies(LedgerOptions options)
    {
        Options = options;
        Metadata = FileMetadataStore.Open(_dir.Sub("metadata"));
        Directory = new BookieDirectory(Metadata, options);
    }

    /// <summary>The deadlines and retry delay of every manager made here; quorums come with each manager.</summary>
    public LedgerOptions Options { get; }

    public IMetadataStore Metadata { get; }

    public BookieDirectory Directory { get; }

    public List<FaultyBookie> Bookies { get; } = [];

    /// <summary>The ledger every bookie stores one entry of at start; ledger ids are 10-digit numbers, so no test's.</summary>
    private const long WarmUpLedger = long.MaxValue;

    public static async Task<LocalBookies> StartAsync(int count, LedgerOptions? options = null)
    {
        var cluster = new LocalBookies(options ?? new LedgerOptions { AddTimeout = TimeSpan.FromSeconds(30), ReadTimeout = TimeSpan.FromSeconds(30) });
        for (var i = 0; i < count; i++)
        {
            var store = await BookieStore.OpenAsync(new BookieOptions { DataDirectory = cluster._dir.Sub("bookie" + i), JournalSegmentSize = new ByteSize(1L << 24) }, NullLogger.Instance);
            cluster._stores.Add(store);

            // A new journal's first commit creates and syncs its files, which can take seconds on a busy machine:
            // done here, it does not count against a test's deadlines.
            var warmUp = new byte[] { 1 };
            await store.AddAsync(WarmUpLedger, 0, -1, Crc32C.Compute(warmUp), false, new ReadOnlySequence<byte>(warmUp));
            var bookie = new FaultyBookie(new LocalBookieClient($"bookie-{i}:{3180 + i}", store));
            cluster.Bookies.Add(bookie);
            cluster.Directory.AddLocal(bookie);
        }

        return cluster;
    }

    public LedgerManager Manager(int e, int qw, int qa) =>
        new(Metadata, Directory, Options with { EnsembleSize = e, WriteQuorum = qw, AckQuorum = qa }, NullLogger.Instance);

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
