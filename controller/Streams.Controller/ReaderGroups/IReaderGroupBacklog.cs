using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>What a group still has to read, computed by the leading controller (readergroups.proto).</summary>
/// <param name="UnreadBytes">Over every segment not completed: its length (or end cut) minus the committed offset.</param>
/// <param name="BackloggedSegments">Segments with unread bytes.</param>
public readonly record struct GroupBacklog(long UnreadBytes, int BackloggedSegments);

/// <summary>
/// The reader-group figures other parts of the controller use: the backlog for the KEDA scaler and the gauges, and the
/// checkpoints of subscribed groups for retention that follows consumption.
/// </summary>
public interface IReaderGroupBacklog
{
    /// <summary>
    /// The group's backlog, or null when there is no such group. The leading controller answers from its coordinator;
    /// another from the stored record (commits up to a second behind).
    /// </summary>
    ValueTask<GroupBacklog?> GetBacklogAsync(string scope, string group, CancellationToken cancellationToken);

    /// <summary>Raised (with scope and group) when a group's backlog may have changed: commits, appends seen, scales.</summary>
    event Action<string, string>? BacklogChanged;

    /// <summary>
    /// For each group subscribed to the stream's retention (<see cref="GroupRetention.AtLastCheckpoint"/>), the cut of the
    /// stream in its latest completed checkpoint, or its start cut while it has none (no positions: the group holds
    /// everything back). Empty when no group subscribes; null when not known (this controller does not lead, or has not
    /// loaded every group yet).
    /// </summary>
    ValueTask<IReadOnlyList<StreamCut>?> GetSubscriberCutsAsync(string scope, string stream, CancellationToken cancellationToken);
}
