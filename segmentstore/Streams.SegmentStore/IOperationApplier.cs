using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore;

/// <summary>An operation's answer, computed when its frame is applied and sent once the applier has returned.</summary>
public readonly record struct DurableAnswer(IOperationCallback Callback, long Token, OperationOutcome Outcome);

/// <summary>
/// Where the <see cref="IOperationLog"/> hands durable frames: applies them to the durable view of the container (its
/// metadata, read index and storage writer).
/// <para>
/// Contract: called on the operation log's commit path, one frame at a time, in log order, with no lock of the log held.
/// It never answers operations itself: it adds their answers to the list, and the log sends them after it returns.
/// </para>
/// </summary>
internal interface IOperationApplier
{
    /// <summary>
    /// Applies a durable frame at <paramref name="address"/>; adds every answer to <paramref name="answers"/> and every
    /// segment whose durable view changed to <paramref name="changed"/>. Takes ownership of the frame's buffer.
    /// </summary>
    void ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed);

    /// <summary>The log failed or stopped and answered everything pending: wake whoever waits for the durable view.</summary>
    void OnLogStopped();
}
