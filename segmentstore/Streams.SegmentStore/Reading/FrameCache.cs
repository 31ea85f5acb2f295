namespace Streams.SegmentStore.Reading;

/// <summary>Identifies a frame across the segment store: containers have separate logs and address spaces.</summary>
public readonly record struct FrameKey(int ContainerId, LogAddress Address);

/// <summary>
/// The segment store's read cache of durable log frames (the tail that live readers use). Every frame in it is durable,
/// so a read that misses loads the frame again from the container's log. One cache serves all containers.
/// </summary>
public sealed class FrameCache(long capacity) : BlockCache<FrameKey>(capacity)
{
    /// <summary>Drops every frame of a container (its log was closed).</summary>
    public void RemoveContainer(int containerId) =>
        RemoveWhere(containerId, static (key, id) => key.ContainerId == id);

    /// <summary>Drops a container's frames before <paramref name="address"/>: its log was truncated there, their data is in Tier 2.</summary>
    public void RemoveBefore(int containerId, LogAddress address) =>
        RemoveWhere((containerId, address), static (key, at) => key.ContainerId == at.containerId && key.Address < at.address);
}
