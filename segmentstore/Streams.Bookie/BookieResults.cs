using System.Buffers;
using Streams.Contracts.Bookie;

namespace Streams.Bookie;

/// <summary>What a ledger looks like on this bookie.</summary>
public readonly record struct LedgerSummary(BookieStatus Status, long LastAddConfirmed, long LastEntryId, bool Fenced);

/// <summary>An entry read from the journal; owns its buffer until disposed.</summary>
public sealed class EntryRead(BookieStatus status, long lastAddConfirmed, uint crc, IMemoryOwner<byte>? owner, ReadOnlyMemory<byte> payload, string? message = null) : IDisposable
{
    public BookieStatus Status { get; } = status;

    public long LastAddConfirmed { get; } = lastAddConfirmed;

    public uint Crc { get; } = crc;

    public ReadOnlyMemory<byte> Payload { get; } = payload;

    public string? Message { get; } = message;

    public static EntryRead Failed(BookieStatus status, string message) => new(status, -1, 0, null, ReadOnlyMemory<byte>.Empty, message);

    public void Dispose() => owner?.Dispose();
}
