using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>A segment whose deletion is durable, with the Tier 2 chunks it had then (for the storage writer to delete).</summary>
internal readonly record struct DeletedSegment(long SegmentId, List<ChunkInfo> Chunks);
