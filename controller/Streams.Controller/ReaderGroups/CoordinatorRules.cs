namespace Streams.Controller.ReaderGroups;

/// <summary>Coordination rules that are the controller's, not a group's configuration.</summary>
public sealed record CoordinatorRules
{
    /// <summary>
    /// How long after a group's first reader joins (or the group restarts, or a new leader takes it over) nothing is
    /// assigned, so that readers starting together share the segments instead of the first one taking all.
    /// </summary>
    public TimeSpan JoinWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>At most one revoke per reader this often, so rebalancing moves segments gradually.</summary>
    public TimeSpan RevokeInterval { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// A segment that follows a completed one, with the predecessors the group reads (readergroups.proto), and where
/// reading it ends (an end cut's offset, or -1).
/// </summary>
public sealed record GroupSuccessor(string Scope, string Stream, long SegmentId, string Name, double KeyStart, double KeyEnd, IReadOnlyList<long> Predecessors, long EndOffset = -1);
