using System.Buffers;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Tests.Reading;

/// <summary>The cache of chunks read back from Tier 2 (ChunkCache.cs), keyed by container, segment and chunk offset.</summary>
public sealed class ChunkCacheTests
{
    private static IMemoryOwner<byte> Bytes(byte value, int length)
    {
        var owner = MemoryPool<byte>.Shared.Rent(length);
        owner.Memory.Span[..length].Fill(value);
        return owner;
    }

    [Fact]
    public void Chunks_at_the_same_offset_of_different_segments_or_containers_are_different_entries()
    {
        var cache = new ChunkCache(1000);
        cache.Add(new ChunkKey(0, 1, 4096), Bytes(1, 10), 10);
        cache.Add(new ChunkKey(0, 2, 4096), Bytes(2, 10), 10);
        cache.Add(new ChunkKey(1, 1, 4096), Bytes(3, 10), 10);

        Assert.Equal(3, cache.Count);
        foreach (var (key, value) in new[] { (new ChunkKey(0, 1, 4096), 1), (new ChunkKey(0, 2, 4096), 2), (new ChunkKey(1, 1, 4096), 3) })
        {
            var chunk = cache.TryAcquire(key)!;
            Assert.Equal(value, chunk.Memory.Span[0]);
            chunk.Release();
        }

        Assert.Null(cache.TryAcquire(new ChunkKey(0, 1, 0)));
    }
}
