using Streams.Common.Configuration;
using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore;

/// <summary>Settings of a segment store (configuration section "SegmentStore").</summary>
public sealed record SegmentStoreOptions
{
    /// <summary>Where container logs live (standalone: under the data directory).</summary>
    public string DataDirectory { get; init; } = "./streams-data/segmentstore";

    /// <summary>
    /// Number of segment containers in the cluster. Fixed once data exists: segments are hashed onto containers.
    /// 4 suits a single node; use a multiple of the segment store count in a cluster.
    /// </summary>
    public int ContainerCount { get; init; } = 4;

    /// <summary>Read cache size, shared by all containers. Recent data is served from it; misses read the log.</summary>
    public ByteSize CacheSize { get; init; } = ByteSize.MiB(256);

    /// <summary>Target size of a log frame (see ContainerOptions.MaxFrameSize).</summary>
    public ByteSize MaxFrameSize { get; init; } = ByteSize.MiB(1);

    /// <summary>Frames accepted but not yet durable, per container (bounds pipeline memory).</summary>
    public int MaxPendingFrames { get; init; } = 16;

    /// <summary>Largest read answer.</summary>
    public ByteSize MaxReadSize { get; init; } = ByteSize.MiB(1);

    /// <summary>Concurrent reads a single client connection may have outstanding.</summary>
    public int MaxReadsPerConnection { get; init; } = 64;

    /// <summary>
    /// Bytes of replies one client connection (raw carrier) or one HTTP/2 connection (gRPC) may hold before they reach
    /// its socket: read answers, counted as the cached frames they pin, and the small replies queued with them. A
    /// client that stops reading its replies holds at most this much; the next read waits (holding nothing) until
    /// earlier replies are sent. 8 MiB is eight full-size reads, milliseconds of loopback traffic. The segment store's
    /// memory is then about CacheSize + Tier2CacheSize + connections × this.
    /// </summary>
    public ByteSize ReplyBudgetPerConnection { get; init; } = ByteSize.MiB(8);

    /// <summary>
    /// A container's log moves to a new ledger after this much. Truncation frees whole ledgers, so smaller ledgers
    /// free space sooner; each rollover costs a metadata update.
    /// </summary>
    public ByteSize LedgerRolloverSize { get; init; } = ByteSize.MiB(256);

    /// <summary>
    /// How much of a container's log recovery reads ahead of its replay: reads of later records are in flight on the
    /// bookies, up to this many bytes (counted at the largest record seen so far), while earlier ones are replayed. It
    /// bounds the memory of each recovering container; the default keeps 16 frames of 1 MiB in flight, enough to hide
    /// the bookies' round trips.
    /// </summary>
    public ByteSize RecoveryReadAhead { get; init; } = ByteSize.MiB(16);

    /// <summary>
    /// Tier 2: file://PATH, a plain path, or s3://BUCKET/PREFIX?endpoint=URL. Null or empty keeps every byte in Tier 1
    /// (no storage writer, the log is never truncated).
    /// </summary>
    public string? Tier2 { get; init; }

    /// <summary>A segment is flushed to Tier 2 once it has this much not there yet.</summary>
    public ByteSize Tier2FlushSize { get; init; } = ByteSize.MiB(4);

    /// <summary>A segment is flushed to Tier 2 once its oldest byte not there is this old.</summary>
    public TimeSpan Tier2FlushAge { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest Tier 2 chunk.</summary>
    public ByteSize Tier2MaxChunkSize { get; init; } = ByteSize.MiB(16);

    /// <summary>Tier 2 chunks kept in memory for reads (separate from the read cache of recent frames).</summary>
    public ByteSize Tier2CacheSize { get; init; } = ByteSize.MiB(128);

    /// <summary>What a container may hold that is not yet in Tier 2; beyond it appends wait for Tier 2.</summary>
    public ByteSize Tier1Budget { get; init; } = ByteSize.GiB(1);

    /// <summary>How long appends wait for room in a full Tier 1 budget before they are refused (retry).</summary>
    public TimeSpan Tier1BudgetTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A container checkpoints its metadata after this much log; its log is truncated at checkpoints.</summary>
    public ByteSize CheckpointEvery { get; init; } = ByteSize.MiB(16);

    /// <summary>
    /// Time between sweeps for orphan chunks (written to Tier 2 by a crashed or fenced owner, never recorded); a
    /// container also sweeps once when it starts.
    /// </summary>
    public TimeSpan Tier2OrphanSweepInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long a writer that appended nothing to a segment is remembered (its deduplication state).</summary>
    public TimeSpan WriterExpiry { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Transaction segments a container holds at most (ContainerOptions.MaxTransactionSegments).</summary>
    public int MaxTransactionSegments { get; init; } = 100_000;

    /// <summary>Age past which a left-over transaction segment is deleted (ContainerOptions.TransactionSegmentExpiry).</summary>
    public TimeSpan TransactionSegmentExpiry { get; init; } = TimeSpan.FromHours(25);

    /// <summary>
    /// The longest a container's stop waits for its log; past it the log is abandoned (the next owner fences it) and
    /// pending appends are told to retry, so a store that lost its session always gets its containers back.
    /// </summary>
    public TimeSpan ContainerStopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    internal ContainerOptions ToContainerOptions() => new()
    {
        WriterExpiry = WriterExpiry,
        MaxTransactionSegments = MaxTransactionSegments,
        TransactionSegmentExpiry = TransactionSegmentExpiry,
        StopTimeout = ContainerStopTimeout,
        Storage = new StorageWriterOptions
        {
            FlushSize = Tier2FlushSize.ToInt32(),
            FlushAge = Tier2FlushAge,
            MaxChunkSize = Math.Max(Tier2MaxChunkSize.ToInt32(), Tier2FlushSize.ToInt32()),
            Tier1Budget = Tier1Budget.Bytes,
            BudgetTimeout = Tier1BudgetTimeout,
            CheckpointEvery = CheckpointEvery.Bytes,
            OrphanSweepInterval = Tier2OrphanSweepInterval,
        },
        MaxFrameSize = MaxFrameSize.ToInt32(),
        MaxPendingFrames = MaxPendingFrames,
        MaxConcurrentWrites = Math.Min(4, MaxPendingFrames),
        MaxReadBytes = MaxReadSize.ToInt32(),
    };

    /// <summary>Checks the settings; throws with a message naming the setting to fix.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("SegmentStore:DataDirectory is empty.");
        }

        if (ContainerCount is < 1 or > 4096)
        {
            throw new ArgumentException($"SegmentStore:ContainerCount must be between 1 and 4096 (is {ContainerCount}).");
        }

        if (CacheSize < ByteSize.MiB(16))
        {
            throw new ArgumentException($"SegmentStore:CacheSize must be at least 16MiB (is {CacheSize}).");
        }

        if (LedgerRolloverSize < ByteSize.MiB(1))
        {
            throw new ArgumentException($"SegmentStore:LedgerRolloverSize must be at least 1MiB (is {LedgerRolloverSize}).");
        }

        if (MaxReadsPerConnection < 1)
        {
            throw new ArgumentException($"SegmentStore:MaxReadsPerConnection must be at least 1 (is {MaxReadsPerConnection}).");
        }

        foreach (var (name, size, limit) in new[]
        {
            ("MaxFrameSize", MaxFrameSize, ByteSize.MiB(64)), ("MaxReadSize", MaxReadSize, ByteSize.MiB(64)),
            ("ReplyBudgetPerConnection", ReplyBudgetPerConnection, ByteSize.GiB(1)),
            ("Tier2FlushSize", Tier2FlushSize, ByteSize.GiB(1)), ("Tier2MaxChunkSize", Tier2MaxChunkSize, ByteSize.GiB(1)),
            ("Tier2CacheSize", Tier2CacheSize, ByteSize.GiB(1024)), ("CheckpointEvery", CheckpointEvery, ByteSize.GiB(1024)),
            ("RecoveryReadAhead", RecoveryReadAhead, ByteSize.GiB(1)),
        })
        {
            if (size.Bytes < 1 || size > limit)
            {
                throw new ArgumentException($"SegmentStore:{name} must be between 1B and {limit} (is {size}).");
            }
        }

        foreach (var (name, duration) in new[]
        {
            ("Tier2FlushAge", Tier2FlushAge), ("Tier1BudgetTimeout", Tier1BudgetTimeout),
            ("Tier2OrphanSweepInterval", Tier2OrphanSweepInterval), ("WriterExpiry", WriterExpiry),
        })
        {
            if (duration <= TimeSpan.Zero || duration > TimeSpan.FromDays(365))
            {
                throw new ArgumentException($"SegmentStore:{name} must be a positive duration of at most a year, as hh:mm:ss or d.hh:mm:ss (is {duration}).");
            }
        }

        if (Tier1Budget.Bytes < Tier2MaxChunkSize.Bytes * 2)
        {
            throw new ArgumentException($"SegmentStore:Tier1Budget ({Tier1Budget}) must be at least twice Tier2MaxChunkSize ({Tier2MaxChunkSize}).");
        }

        ToContainerOptions().Validate();
    }
}
