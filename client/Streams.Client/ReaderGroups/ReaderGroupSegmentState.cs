namespace Streams.Client.ReaderGroups;

/// <summary>Where a segment of a reader group stands.</summary>
public enum ReaderGroupSegmentState
{
    /// <summary>The controller did not say.</summary>
    Unspecified,

    /// <summary>Waiting for its predecessors to be committed to their ends.</summary>
    Future,

    /// <summary>Readable, but no reader holds it.</summary>
    Unassigned,

    /// <summary>A reader holds it.</summary>
    Assigned,

    /// <summary>Committed to its end.</summary>
    Completed,
}
