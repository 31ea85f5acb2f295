namespace Streams.Client.Reading;

/// <summary>Settings of an <see cref="EventStreamReader{T}"/>.</summary>
public sealed record EventReaderOptions
{
    /// <summary>
    /// False (default): read what the stream holds now, then end. True: keep waiting for new events, ending only
    /// when the stream is sealed and fully read (or the enumeration is cancelled).
    /// </summary>
    public bool Follow { get; init; }

    /// <summary>How long one read waits at the tail for new events when following.</summary>
    public TimeSpan TailWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Bytes asked for per read.</summary>
    public int ReadSize { get; init; } = 1024 * 1024;

    /// <summary>
    /// Start at the current end of each segment (only events written from now on), instead of the beginning.
    /// StartOffsets still win for the segments they name.
    /// </summary>
    public bool StartAtTail { get; init; }

    /// <summary>
    /// Where to start in each segment (segment name to offset, e.g. the NextOffset of the last event processed).
    /// Segments not named start at their beginning.
    /// </summary>
    public IReadOnlyDictionary<string, long>? StartOffsets { get; init; }

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
    }
}
