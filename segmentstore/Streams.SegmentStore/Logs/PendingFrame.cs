namespace Streams.SegmentStore.Logs;

/// <summary>A frame on its way to the log, with the operations to apply once it is durable.</summary>
public sealed class PendingFrame
{
    public PendingFrame(DataFrameBuilder builder, PendingCheckpoint? checkpoint = null)
    {
        Builder = builder;
        Checkpoint = checkpoint;
    }

    public DataFrameBuilder Builder { get; }

    /// <summary>
    /// Guarded by the operation log's lock and, once the frame is written, also by the metadata's: operations are added
    /// under both, read under either.
    /// </summary>
    public List<PendingOperation> Operations { get; } = [];

    public bool HasAppends { get; set; }

    /// <summary>
    /// For a checkpoint: written as its pages, consecutive records in this frame's turn; the frame's address is its first
    /// page's, and <see cref="Builder"/> holds nothing. Null for an ordinary frame.
    /// </summary>
    public PendingCheckpoint? Checkpoint { get; }

    /// <summary>The sealed record bytes; set when the frame is handed to the log.</summary>
    public ReadOnlyMemory<byte> Record { get; set; }

    public Task<LogAddress>? Write { get; set; }

    /// <summary>
    /// Set (under the metadata's lock) once the frame's operations are applied to the durable view: from then on nothing
    /// may attach to it, and a barrier can be answered from the durable view at once.
    /// </summary>
    public bool Applied { get; set; }

    /// <summary>Stopwatch timestamp of the hand-off to the log.</summary>
    public long WriteStarted { get; set; }
}
