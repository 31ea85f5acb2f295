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

    /// <summary>Read cache size in MiB, shared by all containers. Recent data is served from it; misses read the log.</summary>
    public int CacheSizeMb { get; init; } = 256;

    /// <summary>Target size of a log frame in KiB (see ContainerOptions.MaxFrameSize).</summary>
    public int MaxFrameSizeKb { get; init; } = 1024;

    /// <summary>Frames accepted but not yet durable, per container (bounds pipeline memory).</summary>
    public int MaxPendingFrames { get; init; } = 16;

    /// <summary>Largest read answer in KiB.</summary>
    public int MaxReadSizeKb { get; init; } = 1024;

    /// <summary>Concurrent reads a single client connection may have outstanding.</summary>
    public int MaxReadsPerConnection { get; init; } = 64;

    /// <summary>
    /// A container's log moves to a new ledger after this many MiB. Truncation frees whole ledgers, so smaller ledgers
    /// free space sooner; each rollover costs a metadata update.
    /// </summary>
    public int LedgerRolloverMb { get; init; } = 256;

    /// <summary>
    /// Tier 2: file://PATH, a plain path, or s3://BUCKET/PREFIX?endpoint=URL. Null or empty keeps every byte in Tier 1
    /// (no storage writer, the log is never truncated).
    /// </summary>
    public string? Tier2 { get; init; }

    /// <summary>A segment is flushed to Tier 2 once it has this many KiB not there yet.</summary>
    public int Tier2FlushSizeKb { get; init; } = 4096;

    /// <summary>A segment is flushed to Tier 2 once its oldest byte not there is this many milliseconds old.</summary>
    public int Tier2FlushAgeMs { get; init; } = 30_000;

    /// <summary>Largest Tier 2 chunk in MiB.</summary>
    public int Tier2MaxChunkMb { get; init; } = 16;

    /// <summary>MiB of Tier 2 chunks kept in memory for reads (separate from the read cache of recent frames).</summary>
    public int Tier2CacheMb { get; init; } = 128;

    /// <summary>MiB a container may hold that are not yet in Tier 2; beyond it appends wait for Tier 2.</summary>
    public int Tier1BudgetMb { get; init; } = 1024;

    /// <summary>Seconds appends wait for room in a full Tier 1 budget before they are refused (retry).</summary>
    public int Tier1BudgetTimeoutSeconds { get; init; } = 120;

    /// <summary>A container checkpoints its metadata after this many KiB of log; its log is truncated at checkpoints.</summary>
    public int CheckpointEveryKb { get; init; } = 16 * 1024;

    /// <summary>
    /// Milliseconds between sweeps for orphan chunks (written to Tier 2 by a crashed or fenced owner, never recorded);
    /// a container also sweeps once when it starts.
    /// </summary>
    public int Tier2OrphanSweepMs { get; init; } = 60 * 60 * 1000;

    /// <summary>Minutes after which a writer that appended nothing to a segment is forgotten (its deduplication state goes).</summary>
    public int WriterExpiryMinutes { get; init; } = 24 * 60;

    internal ContainerOptions ToContainerOptions() => new()
    {
        WriterExpiry = TimeSpan.FromMinutes(WriterExpiryMinutes),
        Storage = new StorageWriterOptions
        {
            FlushSize = Tier2FlushSizeKb * 1024,
            FlushAge = TimeSpan.FromMilliseconds(Tier2FlushAgeMs),
            MaxChunkSize = Math.Max(Tier2MaxChunkMb * 1024 * 1024, Tier2FlushSizeKb * 1024),
            Tier1Budget = (long)Tier1BudgetMb * 1024 * 1024,
            BudgetTimeout = TimeSpan.FromSeconds(Tier1BudgetTimeoutSeconds),
            CheckpointEvery = (long)CheckpointEveryKb * 1024,
            OrphanSweepInterval = TimeSpan.FromMilliseconds(Tier2OrphanSweepMs),
        },
        MaxFrameSize = MaxFrameSizeKb * 1024,
        MaxPendingFrames = MaxPendingFrames,
        MaxConcurrentWrites = Math.Min(4, MaxPendingFrames),
        MaxReadBytes = MaxReadSizeKb * 1024,
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

        if (CacheSizeMb < 16)
        {
            throw new ArgumentException($"SegmentStore:CacheSizeMb must be at least 16 (is {CacheSizeMb}).");
        }

        if (LedgerRolloverMb < 1)
        {
            throw new ArgumentException($"SegmentStore:LedgerRolloverMb must be at least 1 (is {LedgerRolloverMb}).");
        }

        if (MaxReadsPerConnection < 1)
        {
            throw new ArgumentException($"SegmentStore:MaxReadsPerConnection must be at least 1 (is {MaxReadsPerConnection}).");
        }

        if (Tier2FlushSizeKb < 1 || Tier2FlushAgeMs < 1 || Tier2MaxChunkMb < 1 || Tier2CacheMb < 1 || Tier1BudgetTimeoutSeconds < 1 || CheckpointEveryKb < 1 || WriterExpiryMinutes < 1 || Tier2OrphanSweepMs < 1)
        {
            throw new ArgumentException("SegmentStore:Tier2FlushSizeKb, Tier2FlushAgeMs, Tier2MaxChunkMb, Tier2CacheMb, Tier1BudgetTimeoutSeconds, CheckpointEveryKb, WriterExpiryMinutes and Tier2OrphanSweepMs must be at least 1.");
        }

        if ((long)Tier1BudgetMb * 1024 * 1024 < (long)Tier2MaxChunkMb * 1024 * 1024 * 2)
        {
            throw new ArgumentException($"SegmentStore:Tier1BudgetMb ({Tier1BudgetMb}) must be at least twice Tier2MaxChunkMb ({Tier2MaxChunkMb}).");
        }

        ToContainerOptions().Validate();
    }
}
