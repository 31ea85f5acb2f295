namespace Streams.SegmentStore.Containers;

/// <summary>Settings of a segment container's operation pipeline.</summary>
internal sealed record ContainerOptions
{
    /// <summary>
    /// Target size of a log record. 1 MiB amortises the per-record cost (an fsync, a bookie round trip) over
    /// many appends, yet fills in about a millisecond at high load so latency stays low. A single append larger
    /// than this gets a frame of its own.
    /// </summary>
    public int MaxFrameSize { get; init; } = 1024 * 1024;

    /// <summary>
    /// Frames accepted but not yet durable, at most. Bounds the pipeline's memory (this many frames of up to
    /// <see cref="MaxFrameSize"/>); appends beyond it wait (back-pressure).
    /// </summary>
    public int MaxPendingFrames { get; init; } = 16;

    /// <summary>Frames being written to the log at once: overlapping writes let one group commit cover several.</summary>
    public int MaxConcurrentWrites { get; init; } = 4;

    /// <summary>Largest read answer.</summary>
    public int MaxReadBytes { get; init; } = 1024 * 1024;

    public void Validate()
    {
        if (MaxFrameSize < 64 * 1024)
        {
            throw new ArgumentException($"MaxFrameSize must be at least 64 KiB (is {MaxFrameSize}).");
        }

        if (MaxPendingFrames < 2 || MaxConcurrentWrites < 1 || MaxConcurrentWrites > MaxPendingFrames)
        {
            throw new ArgumentException("MaxPendingFrames must be at least 2 and at least MaxConcurrentWrites (at least 1).");
        }

        if (MaxReadBytes < 1024)
        {
            throw new ArgumentException($"MaxReadBytes must be at least 1 KiB (is {MaxReadBytes}).");
        }
    }
}
