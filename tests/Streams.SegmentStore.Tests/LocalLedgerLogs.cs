using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Coordination.Metadata;
using Streams.Hosting;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Tests;

/// <summary>
/// Container logs on a real ledger stack in this process (metadata journal, one bookie, E = Qw = Qa = 1), as
/// standalone runs them. Dispose it and open a new one on the same directory to "restart".
/// </summary>
internal sealed class LocalLedgerLogs : IAsyncDisposable
{
    private readonly FileMetadataStore _metadata;
    private readonly InterceptedMetadataStore _intercepted;
    private readonly BookieStore _bookie;
    private readonly LedgerManager _ledgers;

    private LocalLedgerLogs(FileMetadataStore metadata, InterceptedMetadataStore intercepted, BookieStore bookie, LedgerManager ledgers)
    {
        _metadata = metadata;
        _intercepted = intercepted;
        _bookie = bookie;
        _ledgers = ledgers;
    }

    public IMetadataStore Metadata => _metadata;

    /// <summary>The store the logs and ledgers use: a test can take over the compare-and-sets of one path.</summary>
    public InterceptedMetadataStore Intercepted => _intercepted;

    public static async Task<LocalLedgerLogs> OpenAsync(string directory)
    {
        var metadata = FileMetadataStore.Open(Path.Combine(directory, "metadata"));
        var bookie = await BookieStore.OpenAsync(new BookieOptions { DataDirectory = Path.Combine(directory, "bookie"), JournalSegmentSize = new ByteSize(1L << 24) }, NullLogger.Instance);
        var store = new InterceptedMetadataStore(metadata);
        var bookies = new BookieDirectory(store, TimeSpan.FromSeconds(5));
        bookies.AddLocal(new LocalBookieClient("local", bookie));
        var ledgers = new LedgerManager(store, bookies, new LedgerOptions { EnsembleSize = 1, WriteQuorum = 1, AckQuorum = 1, AddTimeout = TimeSpan.FromSeconds(60), ReadTimeout = TimeSpan.FromSeconds(60) }, NullLogger.Instance);
        return new LocalLedgerLogs(metadata, store, bookie, ledgers);
    }

    public LedgerDurableDataLog Log(int containerId, long rolloverSize = 256L << 20, long readAheadSize = 16L << 20) =>
        new(containerId, _ledgers, rolloverSize, readAheadSize, NullLogger.Instance);

    public async ValueTask DisposeAsync()
    {
        await _bookie.DisposeAsync();
        await _metadata.DisposeAsync();
    }
}
