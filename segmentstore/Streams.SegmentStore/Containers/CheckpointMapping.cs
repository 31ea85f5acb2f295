using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// Between a container checkpoint (the record in the log) and the container metadata's segment maps: what a checkpoint
/// captures of the accepted view, and how recovery restores it. Callers hold the metadata's lock.
/// </summary>
internal static class CheckpointMapping
{
    /// <summary>
    /// The accepted view of <paramref name="segments"/>, forgetting writers idle since before
    /// <paramref name="writerCutoffUnixMs"/> (counted in <paramref name="expiredWriters"/>).
    /// </summary>
    public static ContainerCheckpoint Capture(Dictionary<string, SegmentMetadata>.ValueCollection segments, long nextSegmentId, long writerCutoffUnixMs, out int expiredWriters)
    {
        var captured = new List<CheckpointSegment>(segments.Count);
        expiredWriters = 0;
        foreach (var s in segments)
        {
            expiredWriters += s.ExpireWriters(writerCutoffUnixMs);
            captured.Add(new CheckpointSegment(s.Id, s.Name, s.CreatedAtUnixMs, s.PendingLength, s.PendingStartOffset, s.PendingSealed,
                s.StorageLength, [.. s.Chunks], s.AcceptedWriters(), s.Load.Capture()));
        }

        return new ContainerCheckpoint(nextSegmentId, captured);
    }

    /// <summary>
    /// Makes the maps hold exactly the checkpoint's segments, durable and accepted alike: segments already known are
    /// updated in place (readers may hold them), the others are created, and segments the checkpoint lacks are dropped.
    /// </summary>
    public static void Restore(ContainerCheckpoint checkpoint, Dictionary<string, SegmentMetadata> byName, Dictionary<long, SegmentMetadata> byId)
    {
        var kept = new HashSet<long>();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var c in checkpoint.Segments)
        {
            if (!byId.TryGetValue(c.Id, out var segment))
            {
                segment = new SegmentMetadata(c.Id, c.Name, c.CreatedAtUnixMs) { IsDurable = true };
                byId[c.Id] = segment;
            }

            byName[c.Name] = segment;
            kept.Add(c.Id);
            segment.Length = segment.PendingLength = c.Length;
            segment.StartOffset = segment.PendingStartOffset = c.StartOffset;
            segment.IsSealed = segment.PendingSealed = c.Sealed;
            segment.StorageLength = segment.DurableStorageLength = c.StorageLength;
            segment.Chunks.Clear();
            segment.Chunks.AddRange(c.Chunks);
            segment.RestoreWriters(c.Writers, now);
            if (c.Load is { } load)
            {
                segment.Load.Restore(load);
            }

            segment.Index.TruncateBefore(c.StartOffset);
        }

        foreach (var id in byId.Keys.Where(id => !kept.Contains(id)).ToList())
        {
            var gone = byId[id];
            byId.Remove(id);
            if (byName.TryGetValue(gone.Name, out var named) && named == gone)
            {
                byName.Remove(gone.Name);
            }
        }
    }
}
