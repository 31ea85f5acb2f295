namespace Streams.Client.ReaderGroups;

/// <summary>Settings of a <see cref="GroupReader{T}"/>.</summary>
public sealed record GroupReaderOptions
{
    /// <summary>
    /// True (default): an event counts as processed, and is committed with the next exchange, once the application asks
    /// for the next event (or the enumeration ends, or the reader is disposed). False: only what the application
    /// commits (<see cref="GroupReader{T}.Commit"/>, <see cref="GroupReader{T}.CommitAsync"/>) is committed, and a
    /// revoked segment is released only once everything it delivered is committed (so commit what you were given).
    /// </summary>
    public bool AutoCommit { get; init; } = true;

    /// <summary>Bytes asked for per read of a segment.</summary>
    public int ReadSize { get; init; } = 1024 * 1024;

    /// <summary>How long one read waits at a segment's tail for new events.</summary>
    public TimeSpan TailWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Reads held between the segments and the application, over all assigned segments (default 8): with
    /// <see cref="ReadSize"/>, what bounds the reader's memory. Reading pauses while they are full.
    /// </summary>
    public int BufferedReads { get; init; } = 8;

    internal void Validate()
    {
        if (TailWait <= TimeSpan.Zero || TailWait > TimeSpan.FromSeconds(60))
        {
            throw new ArgumentException($"TailWait must be between 0 and 60 s (is {TailWait}).");
        }

        if (ReadSize is < 1024 or > 16 * 1024 * 1024)
        {
            throw new ArgumentException($"ReadSize must be between 1 KiB and 16 MiB (is {ReadSize}).");
        }

        if (BufferedReads < 1)
        {
            throw new ArgumentException($"BufferedReads must be at least 1 (is {BufferedReads}).");
        }
    }
}
