namespace Streams.Client.Writing;

/// <summary>Settings of an <see cref="EventStreamWriter{T}"/>.</summary>
public sealed record EventWriterOptions
{
    /// <summary>
    /// How long an event may wait for more events to share its block while earlier blocks are in flight.
    /// A writer with nothing in flight sends at once, so a lone event never waits.
    /// </summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Target size of a block of events (one append); a single larger event gets a block of its own.</summary>
    public int MaxBlockSize { get; init; } = 512 * 1024;

    /// <summary>Blocks sent to a segment and not yet acknowledged, at most.</summary>
    public int MaxInflightBlocks { get; init; } = 16;

    /// <summary>
    /// Bytes the writer may hold, buffered or unacknowledged, across all its segments. When it is spent,
    /// WriteEventAsync waits: memory stays bounded and the application slows to the store's pace.
    /// </summary>
    public long MaxBufferedBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// Store each event's routing key with it (2 + key bytes per event), so readers see it in
    /// <c>EventRead.RoutingKey</c>. Off by default: the key only picks the segment.
    /// </summary>
    public bool StoreRoutingKeys { get; init; }

    /// <summary>
    /// The writer's identity for deduplication; a new random id per writer unless set. Within one writer's life, blocks
    /// re-sent after a reconnect or a segment store failover are recognised by it and never appended twice.
    /// <para>
    /// A stable id (the same value every time the application starts) carries over restarts: the new writer continues
    /// numbering after the last event the stream holds for the id, so nothing it writes is mistaken for a re-send of
    /// its predecessor's events, and none is dropped. It does not by itself make re-sending the <em>same</em> events
    /// after a restart exactly-once: the new writer cannot know which of them its predecessor got in. For that, number
    /// the events with the application's own sequence (<c>WriteEventAsync(key, value, sequence)</c>): events whose
    /// sequence the stream already holds for the id complete without being stored again.
    /// </para>
    /// <para>An id names one writer at a time: two live writers with the same id can have each other's events taken for
    /// re-sends.</para>
    /// </summary>
    public Guid? WriterId { get; init; }

    internal void Validate()
    {
        if (Linger < TimeSpan.Zero || Linger > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentException($"Linger must be between 0 and 10 s (is {Linger}).");
        }

        if (MaxBlockSize is < 1024 or > 8 * 1024 * 1024)
        {
            throw new ArgumentException($"MaxBlockSize must be between 1 KiB and 8 MiB (is {MaxBlockSize}).");
        }

        if (MaxInflightBlocks < 1)
        {
            throw new ArgumentException($"MaxInflightBlocks must be at least 1 (is {MaxInflightBlocks}).");
        }

        if (MaxBufferedBytes < 16L * 1024 * 1024)
        {
            throw new ArgumentException($"MaxBufferedBytes must be at least 16 MiB, room for two of the largest events (is {MaxBufferedBytes}).");
        }
    }
}
