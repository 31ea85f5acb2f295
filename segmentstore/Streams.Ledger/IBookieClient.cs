using Streams.Contracts.Bookie;

namespace Streams.Ledger;

/// <summary>An entry as a bookie returned it; owns its payload buffer until disposed.</summary>
public sealed class BookieEntry(BookieStatus status, long lastAddConfirmed, uint crc, ReadOnlyMemory<byte> payload, IDisposable? owner = null) : IDisposable
{
    public BookieStatus Status { get; } = status;

    public long LastAddConfirmed { get; } = lastAddConfirmed;

    public uint Crc { get; } = crc;

    public ReadOnlyMemory<byte> Payload { get; } = payload;

    public void Dispose() => owner?.Dispose();
}

/// <summary>A bookie's view of a ledger: its last-add-confirmed, last stored entry and whether it is fenced.</summary>
public readonly record struct BookieLedgerState(BookieStatus Status, long LastAddConfirmed, long LastEntryId, bool Fenced);

/// <summary>
/// Talks to one bookie. Transport failures (the bookie is down, a connection broke, no answer in time) surface as
/// <see cref="BookieUnavailableException"/>; answers the bookie gave (FENCED, NO_SUCH_ENTRY...) are statuses.
/// </summary>
public interface IBookieClient : IAsyncDisposable
{
    string BookieId { get; }

    /// <summary>
    /// Stores an entry. The client reads <paramref name="payload"/> through <see cref="EntryPayload.Use"/> when it
    /// writes the request, and keeps none of its bytes past that call.
    /// </summary>
    Task<BookieStatus> AddAsync(long ledger, long entry, long lastAddConfirmed, uint crc, bool recovery, EntryPayload payload, CancellationToken cancellationToken = default);

    Task<BookieEntry> ReadAsync(long ledger, long entry, CancellationToken cancellationToken = default);

    Task<BookieLedgerState> ReadLacAsync(long ledger, CancellationToken cancellationToken = default);

    Task<BookieLedgerState> FenceAsync(long ledger, CancellationToken cancellationToken = default);

    Task<BookieStatus> DeleteAsync(long ledger, CancellationToken cancellationToken = default);
}

/// <summary>A bookie could not be reached or did not answer in time.</summary>
public sealed class BookieUnavailableException(string bookieId, string message, Exception? inner = null)
    : IOException($"Bookie {bookieId}: {message}", inner)
{
    public string BookieId { get; } = bookieId;
}
