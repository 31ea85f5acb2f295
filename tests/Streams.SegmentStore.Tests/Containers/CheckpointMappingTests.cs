using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Tests.Containers;

public sealed class CheckpointMappingTests
{
    [Fact]
    public void Restoring_a_capture_gives_back_the_accepted_view_and_drops_what_the_checkpoint_lacks()
    {
        var writer = Guid.NewGuid();
        var kept = new SegmentMetadata(1, "s/t/0", 1000) { PendingLength = 300, PendingStartOffset = 100, StorageLength = 200 };
        kept.Chunks.Add(new ChunkInfo("c0", 100, 100, 7));
        kept.RestoreWriters([new CheckpointWriter(writer, 41, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())], DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var source = new Dictionary<string, SegmentMetadata> { [kept.Name] = kept };
        var checkpoint = CheckpointMapping.Capture(source.Values, nextSegmentId: 5, writerCutoffUnixMs: 0, out var expired);
        Assert.Equal(0, expired);
        Assert.Equal(5, checkpoint.NextSegmentId);

        var stale = new SegmentMetadata(2, "s/t/1", 1000);
        var byName = new Dictionary<string, SegmentMetadata>(StringComparer.Ordinal) { [stale.Name] = stale };
        var byId = new Dictionary<long, SegmentMetadata> { [stale.Id] = stale };
        CheckpointMapping.Restore(checkpoint, byName, byId);

        var restored = Assert.Single(byId).Value;
        Assert.Same(restored, byName["s/t/0"]);
        Assert.Equal((300L, 300L, 100L, 200L), (restored.Length, restored.PendingLength, restored.StartOffset, restored.StorageLength));
        Assert.Equal("c0", Assert.Single(restored.Chunks).Name);
        Assert.Equal(41, Assert.Single(restored.AcceptedWriters()).EventNumber);
    }

    [Fact]
    public void A_capture_forgets_writers_idle_since_before_the_cutoff()
    {
        var segment = new SegmentMetadata(1, "s/t/0", 1000);
        segment.RestoreWriters([new CheckpointWriter(Guid.NewGuid(), 3, 10), new CheckpointWriter(Guid.NewGuid(), 4, 5_000)], 5_000);
        var checkpoint = CheckpointMapping.Capture(new Dictionary<string, SegmentMetadata> { [segment.Name] = segment }.Values, 2, writerCutoffUnixMs: 1_000, out var expired);
        Assert.Equal(1, expired);
        Assert.Equal(4, Assert.Single(Assert.Single(checkpoint.Segments).Writers).EventNumber);
    }
}
