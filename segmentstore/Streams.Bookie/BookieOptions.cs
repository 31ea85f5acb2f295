using System.Numerics;
using Streams.Common.Configuration;

namespace Streams.Bookie;

/// <summary>Settings of a bookie (configuration section "Bookie").</summary>
public sealed record BookieOptions
{
    /// <summary>Where the journal lives.</summary>
    public string DataDirectory { get; init; } = "./streams-data/bookie";

    /// <summary>
    /// Size of a journal file, a power of two from 1MiB to 4GiB. Space comes back a whole file at a time, so smaller
    /// files reclaim sooner; larger ones mean fewer files.
    /// </summary>
    public ByteSize JournalSegmentSize { get; init; } = ByteSize.MiB(64);

    /// <summary>log2 of <see cref="JournalSegmentSize"/>, as the journal takes it.</summary>
    public int JournalSegmentSizeBits => BitOperations.Log2((ulong)JournalSegmentSize.Bytes);

    /// <summary>How often garbage collection looks for space to reclaim.</summary>
    public TimeSpan GcInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest entry payload accepted (an 8 MiB event plus frame overhead fits).</summary>
    public ByteSize MaxEntrySize { get; init; } = ByteSize.MiB(10);

    /// <summary>
    /// Bytes one raw connection may hold in requests and their replies, each until its reply is flushed to the socket
    /// (a read counts as <see cref="MaxEntrySize"/> until its entry is read). Once spent, the bookie reads no more of
    /// the connection's requests until replies go out, so a connection holds at most this, or one entry when that is
    /// larger. 64MiB keeps a fast writer's pipeline full (a ledger client rarely has more than a few MiB in flight
    /// per bookie) while a few hundred connections stay within a few GiB.
    /// </summary>
    public ByteSize MaxConnectionInFlightBytes { get; init; } = ByteSize.MiB(64);

    /// <summary>Requests one raw connection may have in progress, not yet answered (the count bound beside <see cref="MaxConnectionInFlightBytes"/>).</summary>
    public int MaxConnectionInFlightRequests { get; init; } = 4096;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("Bookie:DataDirectory is empty.");
        }

        if (JournalSegmentSize < ByteSize.MiB(1) || JournalSegmentSize > ByteSize.GiB(4) || !BitOperations.IsPow2(JournalSegmentSize.Bytes))
        {
            throw new ArgumentException($"Bookie:JournalSegmentSize must be a power of two from 1MiB to 4GiB (is {JournalSegmentSize}).");
        }

        if (MaxEntrySize.Bytes < 1 || MaxEntrySize.Bytes + Storage.JournalRecord.HeaderSize > Storage.Journal.MaxRecordSizeFor(JournalSegmentSizeBits))
        {
            throw new ArgumentException(
                $"Bookie:MaxEntrySize ({MaxEntrySize}) does not fit the journal's pages with JournalSegmentSize {JournalSegmentSize}; use 16MiB or more.");
        }

        if (MaxConnectionInFlightBytes < ByteSize.KiB(64))
        {
            throw new ArgumentException($"Bookie:MaxConnectionInFlightBytes must be at least 64KiB (is {MaxConnectionInFlightBytes}).");
        }

        if (MaxConnectionInFlightRequests < 1)
        {
            throw new ArgumentException($"Bookie:MaxConnectionInFlightRequests must be at least 1 (is {MaxConnectionInFlightRequests}).");
        }

        if (GcInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("Bookie:GcInterval must be positive.");
        }
    }
}
