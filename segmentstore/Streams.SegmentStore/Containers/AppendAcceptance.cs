namespace Streams.SegmentStore.Containers;

/// <summary>What happened to an append handed to <see cref="SegmentContainer.TryAppend"/>.</summary>
public enum AppendAcceptance
{
    /// <summary>Copied into a frame; the callback answers once it is durable (or failed).</summary>
    Accepted,

    /// <summary>Answered at once, in the out parameter: rejected, or a duplicate with nothing pending.</summary>
    Completed,

    /// <summary>The pipeline is full: wait with <see cref="SegmentContainer.WaitForCapacityAsync"/> and try again.</summary>
    NoCapacity,
}
