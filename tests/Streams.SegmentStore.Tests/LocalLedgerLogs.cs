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
    private readonly BookieStore _bookie;
    private readonly LedgerManager _ledgers;

    private LocalLedgerLogs(FileMetadataStore metadata, BookieStore bookie, LedgerManager ledgers)
    {
        _metadata = metadata;
        _bookie = bookie;
        _ledgers = ledgers;
    }

    public IMetadataStore Metadata => _metadata;

    public static async Task<LocalLedgerLogs> OpenAsync(string directory)
    {
        var metadata = FileMetadataStore.Open(Path.Combine(directory, "metadata"));
        var bookie = await BookieStore.OpenAsync(new BookieOptions { DataDirectory = Path.Combine(directory, "bookie"), JournalSegmentSize = new ByteSize(1L << 24) }, NullLogger.Instance);
        var bookies = new BookieDirectory(metadata, TimeSpan.FromSeconds(5));
        bookies.AddLocal(new LocalBookieClient("local", bookie));
        var ledgers = new LedgerManager(metadata, bookies, new LedgerOptions { EnsembleSize = 1, WriteQuorum = 1, AckQuorum = 1 }, NullLogger.Instance);
        return new LocalLedgerLogs(metadata, bookie, ledgers);
    }

    public LedgerDurableDataLog Log(int containerId, long rolloverSize = 256L << 20) => new(containerId, _ledgers, rolloverSize, NullLogger.Instance);

    public async ValueTask DisposeAsync()
    {
        await _bookie.DisposeAsync();
        await _metadata.DisposeAsync();
    }
}
