namespace Streams.SegmentStore.Containers;

/// <summary>Where a container is in its life; owned by its operation log.</summary>
public enum ContainerState
{
    Created,
    Recovering,
    Running,
    Failed,
    Stopped,
}
