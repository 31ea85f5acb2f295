using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore;

/// <summary>Settings of a segment store (configuration section "SegmentStore").</summary>
internal sealed record SegmentStoreOptions
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

    internal ContainerOptions ToContainerOptions() => new()
    {
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

        ToContainerOptions().Validate();
    }
}
