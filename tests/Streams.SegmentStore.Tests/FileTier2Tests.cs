using Streams.SegmentStore.Containers;
using Streams.Testing;
using Streams.Tier2.FileSystem;

namespace Streams.SegmentStore.Tests;

/// <summary>Tests of containers over a filesystem Tier 2 in a fresh temporary directory (wrapped, so a test can make it fail).</summary>
public abstract class FileTier2Tests : IDisposable
{
    private protected FileTier2Tests(string prefix)
    {
        Dir = new TempDirectory(prefix);
        Tier2 = new ToggledChunkStorage(new FileChunkStorage(Dir.Sub("tier2")));
    }

    private protected TempDirectory Dir { get; }

    private protected ToggledChunkStorage Tier2 { get; }

    public void Dispose()
    {
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A container on this Tier 2 (<see cref="ContainerTesting.CreateWithTier2"/>).</summary>
    private protected SegmentContainer Create(InMemoryDurableDataLog log, ContainerOptions options, long cacheBytes = 128 * 1024) =>
        ContainerTesting.CreateWithTier2(Tier2, log, options, cacheBytes);
}
