namespace Streams.Controller.ReaderGroups;

/// <summary>Where a segment of a group is in its reading (readergroups.proto SegmentReadState).</summary>
public enum GroupSegmentState
{
    /// <summary>Waiting for predecessors to be committed to their end.</summary>
    Future,
    Unassigned,
    Assigned,
    /// <summary>Committed to its end; kept until its successors are known.</summary>
    Completed,
}

/// <summary>
/// One segment a group reads, as stored: its state, owner and owner epoch, and the group's committed offset in it.
/// <see cref="Pending"/> are the predecessors (that the group reads) not completed yet, while <see cref="GroupSegmentState.Future"/>.
/// </summary>
public sealed class GroupSegmentRecord
{
    public required string Scope { get; init; }

    public required string Stream { get; init; }

    /// <summary>(epoch &lt;&lt; 32) | number.</summary>
    public required long SegmentId { get; init; }

    /// <summary>The qualified name, "scope/stream/number.#epoch.E".</summary>
    public required string Name { get; init; }

    public double KeyStart { get; init; }

    public double KeyEnd { get; init; } = 1;

    public GroupSegmentState State { get; set; } = GroupSegmentState.Unassigned;

    /// <summary>The reader id that owns it (Assigned only).</summary>
    public string? Owner { get; set; }

    /// <summary>Raised on every assignment: commits, releases and completions carry it, and a stale one is fenced.</summary>
    public long OwnerEpoch { get; set; }

    /// <summary>The offset of the first event the group has not committed (an event boundary).</summary>
    public long CommittedOffset { get; set; }

    /// <summary>Where reading ends (an end cut's offset), or -1 for the segment's end.</summary>
    public long EndOffset { get; init; } = -1;

    /// <summary>Predecessors still to be completed (Future only).</summary>
    public List<long> Pending { get; init; } = [];

    /// <summary>A revoke was sent and the owner has not released it yet (Assigned only).</summary>
    public bool Revoking { get; set; }

    /// <summary>Completed only: whether its successors have been looked up and added (until then it stays in the record).</summary>
    public bool SuccessorsKnown { get; set; }
}

/// <summary>A member of a group: a reader id and its current session.</summary>
public sealed class GroupMemberRecord
{
    public required string ReaderId { get; init; }

    public long SessionEpoch { get; set; }
}

/// <summary>
/// The coordination state of one group, as stored in the metadata store (JSON): written on membership and assignment
/// changes, and for commits at most once a second. Heartbeats are not in it; they stay in the leading controller's memory.
/// </summary>
public sealed class GroupStateRecord
{
    /// <summary>Bumped when the group is updated or reset: every assignment of an older generation is fenced.</summary>
    public long Generation { get; set; }

    /// <summary>The last epoch handed out, for sessions and assignments alike (so no two are ever equal).</summary>
    public long LastEpoch { get; set; }

    public List<GroupMemberRecord> Members { get; init; } = [];

    /// <summary>Every segment not completed, and completed ones whose successors are not known yet.</summary>
    public List<GroupSegmentRecord> Segments { get; init; } = [];

    /// <summary>Ids of the segments completed in this generation: a successor waits only for predecessors not among them.</summary>
    public HashSet<long> CompletedIds { get; init; } = [];

    /// <summary>Segments completed in this generation with nothing after them (a sealed stream's last, an end cut's), and where.</summary>
    public List<GroupFinishedRecord> Finished { get; init; } = [];
}

/// <summary>A segment read to its end with no successor to read: where it ended, for checkpoints.</summary>
public sealed record GroupFinishedRecord(string Scope, string Stream, long SegmentId, long Offset);

/// <summary>What a group's state needs written.</summary>
public enum GroupDirt
{
    Clean,
    /// <summary>Only committed offsets changed: write within the commit interval (batched).</summary>
    Commits,
    /// <summary>Membership or assignment changed: write before answering.</summary>
    Now,
}
