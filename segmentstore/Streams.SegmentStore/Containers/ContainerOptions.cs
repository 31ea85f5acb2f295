namespace Streams.SegmentStore.Containers;

/// <summary>Settings of a segment container's operation pipeline.</summary>
public sealed record ContainerOptions
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

    /// <summary>
    /// A writer that has appended nothing to a segment for this long (and has nothing in flight) is forgotten at the
    /// next checkpoint: its deduplication state goes, so the state does not grow with every writer that ever came and
    /// went. A writer that comes back later starts afresh (nothing of its own is in flight after so long).
    /// </summary>
    public TimeSpan WriterExpiry { get; init; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Longest a container's stop waits for its log (frames in flight, the last ledger's close) and its recovery to
    /// finish. Past it the log is abandoned: pending operations are answered "unavailable" and the store may start the
    /// container again, while the old copy's teardown finishes in the background. That is safe because the next
    /// owner's recovery fences the old copy's ledgers, so it can write nothing more. 10 s covers a close on healthy
    /// bookies many times over; a log that takes longer waits for something that will not come (a frozen store woken
    /// to find its ledgers fenced and its metadata session gone).
    /// </summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Transaction segments one container holds at most; a setup that would create one more is refused (the writer's
    /// transaction fails) until commits and aborts remove some. Bounds what transactions cost the container's memory.
    /// </summary>
    public int MaxTransactionSegments { get; init; } = 100_000;

    /// <summary>
    /// A transaction segment that still exists this long after its creation is deleted: no transaction lives that long
    /// (the controller aborts any at its maximum lifetime, 24 h by default), so it is left over (a write that arrived
    /// after its transaction's commit or abort).
    /// </summary>
    public TimeSpan TransactionSegmentExpiry { get; init; } = TimeSpan.FromHours(25);

    /// <summary>How data moves to Tier 2 (used when the container has a Tier 2).</summary>
    public StorageWriterOptions Storage { get; init; } = new();

    /// <summary>How segment load is measured and reported (configuration section "Scaling").</summary>
    public Load.SegmentLoadOptions Load { get; init; } = new();

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

        if (MaxTransactionSegments < 1 || TransactionSegmentExpiry <= TimeSpan.Zero)
        {
            throw new ArgumentException($"MaxTransactionSegments and TransactionSegmentExpiry must be positive (are {MaxTransactionSegments} and {TransactionSegmentExpiry}).");
        }

        if (WriterExpiry <= TimeSpan.Zero)
        {
            throw new ArgumentException($"WriterExpiry must be positive (is {WriterExpiry}).");
        }

        if (MaxReadBytes < 1024)
        {
            throw new ArgumentException($"MaxReadBytes must be at least 1 KiB (is {MaxReadBytes}).");
        }

        if (StopTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"SegmentStore:ContainerStopTimeout must be positive (is {StopTimeout}).");
        }

        Storage.Validate();
        Load.Validate();
    }
}

/// <summary>Settings of a container's storage writer, which moves durable data from Tier 1 to Tier 2.</summary>
public sealed record StorageWriterOptions
{
    /// <summary>A segment is flushed once it has this many bytes not in Tier 2 (one chunk per flush).</summary>
    public int FlushSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>A segment is flushed once its oldest byte not in Tier 2 is this old, however little there is.</summary>
    public TimeSpan FlushAge { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest chunk: one flush writes at most this much of a segment.</summary>
    public int MaxChunkSize { get; init; } = 16 * 1024 * 1024;

    /// <summary>
    /// Bytes the container may hold that are not yet in Tier 2 (Tier 1 budget). Beyond it appends wait (slow acks)
    /// until the storage writer catches up, or fail after <see cref="BudgetTimeout"/>.
    /// </summary>
    public long Tier1Budget { get; init; } = 1024L * 1024 * 1024;

    /// <summary>How long appends wait for Tier 2 to make room in a full Tier 1 budget before they are refused (retry).</summary>
    public TimeSpan BudgetTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A checkpoint of the container's metadata is written after this many log bytes; the log is truncated only at checkpoints.</summary>
    public long CheckpointEvery { get; init; } = 16 * 1024 * 1024;

    /// <summary>First delay after a failed Tier 2 request; doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan MinRetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the container deletes chunks of its own that no segment references (left by a crash between writing
    /// a chunk and recording it, or by a fenced previous owner). The first sweep runs right after the container starts.
    /// </summary>
    public TimeSpan OrphanSweepInterval { get; init; } = TimeSpan.FromHours(1);

    public void Validate()
    {
        if (FlushSize < 1 || MaxChunkSize < FlushSize)
        {
            throw new ArgumentException($"The flush size must be positive and at most the largest chunk ({FlushSize} > {MaxChunkSize}).");
        }

        if (FlushAge <= TimeSpan.Zero || BudgetTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("The flush age and the budget timeout must be positive.");
        }

        if (Tier1Budget < MaxChunkSize)
        {
            throw new ArgumentException($"The Tier 1 budget ({Tier1Budget} bytes) must hold at least one chunk ({MaxChunkSize} bytes).");
        }

        if (CheckpointEvery < 1)
        {
            throw new ArgumentException("CheckpointEvery must be positive.");
        }
    }
}
