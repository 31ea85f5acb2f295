using System.Buffers;

namespace Streams.SegmentStore;

/// <summary>A record read back from a durable log.</summary>
public readonly record struct LogRecord(LogAddress Address, IMemoryOwner<byte> Data, int Length) : IDisposable
{
    public ReadOnlyMemory<byte> Memory => Data.Memory[..Length];

    public void Dispose() => Data.Dispose();
}

/// <summary>
/// A segment container's write-ahead log: an ordered sequence of records, each durable once its append completes.
/// <para>
/// Contract: <see cref="AppendAsync"/> completes only when the record is durable (fsynced, on the ack quorum
/// for replicated logs), and completes appends in the order they were made. After <see cref="OpenAsync"/>,
/// no earlier owner of the log can append anything more (fencing). A log never returns a record whose
/// checksum fails: it throws <see cref="DataCorruptionException"/> instead.
/// </para>
/// </summary>
public interface IDurableDataLog : IAsyncDisposable
{
    /// <summary>Largest record <see cref="AppendAsync"/> accepts.</summary>
    int MaxRecordSize { get; }

    /// <summary>Takes ownership of the log: fences earlier owners and recovers its tail.</summary>
    ValueTask OpenAsync(CancellationToken cancellationToken = default);

    /// <summary>This owner's epoch, set by <see cref="OpenAsync"/>: every new owner of the log has a higher one.</summary>
    long Epoch { get; }

    /// <summary>
    /// Confirms with the metadata store that nobody took the log over since this owner opened it. Throws (and the log
    /// fails) if somebody did, or if that cannot be confirmed now (the store is unreachable). Called before anything
    /// irreversible outside the log, such as deleting Tier 2 data: a partitioned old owner, whose view is stale, must
    /// delete nothing.
    /// </summary>
    ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default);

    /// <summary>Appends a record; completes with its address once it is durable.</summary>
    ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default);

    /// <summary>Reads every record from the truncation point to the tail, in order (recovery).</summary>
    IAsyncEnumerable<LogRecord> ReadAllAsync(CancellationToken cancellationToken = default);

    /// <summary>Reads one record by address.</summary>
    ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default);

    /// <summary>Discards every record before <paramref name="upTo"/> (the record at it stays); their space is reclaimed.</summary>
    ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default);
}

/// <summary>Stored data failed its checksum. The data is not served.</summary>
internal sealed class DataCorruptionException : Exception
{
    public DataCorruptionException(string message)
        : base(message)
    {
    }
}
