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

/// <summary>
/// A bookie that can be taken down, frozen or disposed, serve a damaged copy of one entry, or run a test's code around
/// adds and deletes.
/// </summary>
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

    /// <summary>An entry this bookie serves with one payload byte flipped (its stored CRC no longer matches).</summary>
    public long? CorruptEntry { get; set; }

    /// <summary>Runs before each add reaches the bookie (before its payload is read), with the entry id.</summary>
    public Func<long, Task>? BeforeAdd { get; set; }

    /// <summary>Runs after each successful add, with the entry id, before the add completes.</summary>
    public Func<long, Task>? AfterAdd { get; set; }

    /// <summary>Runs before each delete reaches the bookie.</summary>
    public Func<Task>? BeforeDelete { get; set; }

    public string BookieId => inner.BookieId;

    public async Task<BookieStatus> AddAsync(long ledger, long entry, long lac, uint crc, bool recovery, EntryPayload payload, CancellationToken cancellationToken = default)
    {
        if (Faulted<BookieStatus>() is { } faulted)
        {
            return await faulted;
        }

        if (BeforeAdd is { } before)
        {
            await before(entry);
        }

        var status = await inner.AddAsync(ledger, entry, lac, crc, recovery, payload, cancellationToken);
        if (status == BookieStatus.Ok && AfterAdd is { } after)
        {
            await after(entry);
        }

        return status;
    }

    public async Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
    {
        if (Faulted<BookieEntry>() is { } faulted)
        {
            return await faulted;
        }

        var read = await inner.ReadAsync(ledger, entry, cancellationToken);
        if (entry != CorruptEntry || read.Status != BookieStatus.Ok)
        {
            return read;
        }

        using (read)
        {
            var damaged = read.Payload.ToArray();
            damaged[damaged.Length / 2] ^= 0xFF;
            return new BookieEntry(read.Status, read.LastAddConfirmed, read.Crc, damaged);
        }
    }

    public Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default) =>
        Faulted<BookieLedgerState>() ?? inner.ReadLacAsync(ledger, cancellationToken);

    public Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default) =>
        Faulted<BookieLedgerState>() ?? inner.FenceAsync(ledger, cancellationToken);

    public async Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default)
    {
        if (Faulted<BookieStatus>() is { } faulted)
        {
            return await faulted;
        }

        if (BeforeDelete is { } before)
        {
            await before();
        }

        return await inner.DeleteAsync(ledger, cancellationToken);
    }

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

    /// <summary>Registers bookies as a bookie process does (auto-recovery looks only at registrations).</summary>
    public async Task RegisterAsync(params IEnumerable<FaultyBookie> bookies)
    {
        foreach (var bookie in bookies)
        {
            await BookieDirectory.RegisterAsync(Metadata, bookie.BookieId);
        }
    }

    /// <summary>A bookie dies: its requests fail and its registration is gone.</summary>
    public async Task KillAsync(string id)
    {
        Bookie(id).Down = true;
        await Metadata.TryDeleteAsync($"{BookieDirectory.AvailablePath}/{id}");
    }

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
