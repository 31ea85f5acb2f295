namespace Streams.SegmentStore.Reading;

/// <summary>Identifies a chunk read back from Tier 2: a container's segment and the segment offset where the chunk starts.</summary>
public readonly record struct ChunkKey(int ContainerId, long SegmentId, long Offset);

/// <summary>
/// The segment store's cache of chunks read back from Tier 2, apart from the <see cref="FrameCache"/> so that readers
/// catching up from Tier 2 never evict the tail that live readers use. Chunks are immutable once written, so a cached
/// chunk is never stale.
/// </summary>
public sealed class ChunkCache(long capacity) : BlockCache<ChunkKey>(capacity);
