using Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>
/// One segment a group reader holds, from its Assign until it is completed, released or fenced: how far it was read,
/// handed to the application, consumed and committed. Every field but the identity is guarded by the reader's lock.
/// The offsets only grow, and Committed ≤ Consumed ≤ Queued (the application can commit only what it was given).
/// </summary>
internal sealed class GroupAssignment(Assign assign)
{
    public long SegmentId { get; } = assign.SegmentId;

    public string Segment { get; } = assign.Segment;

    public long OwnerEpoch { get; } = assign.OwnerEpoch;

    public long Start { get; } = assign.StartOffset;

    /// <summary>Where reading ends: the assignment's end offset, or -1 for the segment's end.</summary>
    public long End { get; } = assign.EndOffset;

    /// <summary>Stops the segment's read loop: on Revoke, Fenced, the session's end, or disposal.</summary>
    public CancellationTokenSource Cancel { get; } = new();

    /// <summary>The read loop; set once it started.</summary>
    public Task Reading { get; set; } = Task.CompletedTask;

    /// <summary>The offset after the last event put into the reader's buffer.</summary>
    public long Queued { get; set; } = assign.StartOffset;

    /// <summary>The offset after the last event handed to the application.</summary>
    public long Yielded { get; set; } = assign.StartOffset;

    /// <summary>The offset after the last event the application moved past (asked for the next one).</summary>
    public long Consumed { get; set; } = assign.StartOffset;

    /// <summary>The offset after the last processed event: what the next exchange commits.</summary>
    public long Committed { get; set; } = assign.StartOffset;

    /// <summary>What the controller last acknowledged as committed (an exchange carrying it succeeded).</summary>
    public long CommitSent { get; set; } = assign.StartOffset;

    /// <summary>True once the read loop stopped: <see cref="Queued"/> is final.</summary>
    public bool ReadingDone { get; set; }

    /// <summary>Where the segment is completed once it was read to its end (or to <see cref="End"/>, never past it); null before.</summary>
    public long? FinalOffset { get; set; }

    /// <summary>The controller asked for it back: release it once what was delivered is consumed.</summary>
    public bool Revoked { get; set; }

    /// <summary>No longer this reader's (fenced, completed, released, or its session ended): nothing more is sent or yielded for it.</summary>
    public bool Gone { get; set; }

    /// <summary>The segment's position at <paramref name="offset"/>, as the wire carries it.</summary>
    public SegmentPosition Position(long offset) => new() { SegmentId = SegmentId, Segment = Segment, Offset = offset };
}
