using Contract = Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>A reader group as the controller describes it.</summary>
/// <param name="Scope">The group's scope.</param>
/// <param name="Group">The group's name.</param>
/// <param name="Config">What it reads, with its start and end cuts.</param>
/// <param name="Generation">Raised each time the group restarts: its configuration replaced, or reset to cuts.</param>
/// <param name="Readers">The ids of the readers in the group.</param>
/// <param name="Segments">Every segment not completed, and completed ones whose successors are not all known yet.</param>
/// <param name="UnreadBytes">What the group still has to read, over every segment not completed.</param>
/// <param name="Ended">True once every segment is completed.</param>
public sealed record ReaderGroupDescription(
    string Scope,
    string Group,
    ReaderGroupConfig Config,
    long Generation,
    IReadOnlyList<string> Readers,
    IReadOnlyList<ReaderGroupSegment> Segments,
    long UnreadBytes,
    bool Ended)
{
    /// <summary>The group's latest checkpoints, oldest first (the controller keeps the last 10).</summary>
    public IReadOnlyList<ReaderGroupCheckpoint> Checkpoints { get; init; } = [];

    internal static ReaderGroupDescription From(Contract.ReaderGroupInfo info) => new(
        info.Scope,
        info.Group,
        ReaderGroupConfig.From(info.Config),
        info.Generation,
        [.. info.Members.Select(m => m.ReaderId)],
        [.. info.Segments.Select(s => new ReaderGroupSegment(s.Segment, s.SegmentId, (ReaderGroupSegmentState)s.State, s.Owner.Length > 0 ? s.Owner : null, s.CommittedOffset, s.UnreadBytes))],
        info.UnreadBytes,
        info.Ended)
    {
        Checkpoints = [.. info.Checkpoints.Select(ReaderGroupCheckpoint.From)],
    };
}
