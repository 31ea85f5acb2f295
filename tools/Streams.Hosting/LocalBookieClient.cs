using System.Buffers;
using Streams.Bookie.Storage;
using Streams.Contracts.Bookie;
using Streams.Ledger;

namespace Streams.Hosting;

/// <summary>
/// A bookie in the same process (standalone): the ledger client calls the bookie's store directly instead of over
/// TCP. Everything above the transport — ledgers, fencing, recovery, the journal — is the same code as in a cluster.
/// </summary>
public sealed class LocalBookieClient(string bookieId, BookieStore store) : IBookieClient
{
    public string BookieId { get; } = bookieId;

    /// <summary>The store copies the payload into its journal record before it returns, within the payload's read.</summary>
    public Task<BookieStatus> AddAsync(long ledger, long entry, long lastAddConfirmed, uint crc, bool recovery, EntryPayload payload, CancellationToken cancellationToken = default) =>
        payload.Use(
            (Store: store, Ledger: ledger, Entry: entry, Lac: lastAddConfirmed, Crc: crc, Recovery: recovery),
            static (bytes, s) => s.Store.AddAsync(s.Ledger, s.Entry, s.Lac, s.Crc, s.Recovery, new ReadOnlySequence<byte>(bytes)));

    public async Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default)
    {
        var read = await store.ReadAsync(ledger, entry, cancellationToken);
        return new BookieEntry(read.Status, read.LastAddConfirmed, read.Crc, read.Payload, read);
    }

    public Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var lac = store.ReadLac(ledger);
        return Task.FromResult(new BookieLedgerState(lac.Status, lac.LastAddConfirmed, lac.LastEntryId, lac.Fenced));
    }

    public async Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default)
    {
        var fenced = await store.FenceAsync(ledger);
        return new BookieLedgerState(fenced.Status, fenced.LastAddConfirmed, fenced.LastEntryId, true);
    }

    public Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default) => store.DeleteAsync(ledger);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
