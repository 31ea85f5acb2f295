namespace Streams.SegmentStore.Containers;

/// <summary>How a container operation ended. Expected outcomes are values, not exceptions.</summary>
public enum OutcomeStatus
{
    Success,
    NoSuchSegment,
    SegmentSealed,
    SegmentExists,
    /// <summary>A conditional append's expected offset did not match.</summary>
    ConditionFailed,
    /// <summary>A malformed block (framing, counts, size) or an offset outside the segment.</summary>
    InvalidArgument,
    /// <summary>The container cannot take operations now (recovering, failed, or shutting down); retry.</summary>
    ContainerUnavailable,
}

/// <param name="Status">The outcome.</param>
/// <param name="SegmentLength">The segment's length once the operation is applied.</param>
/// <param name="EventNumber">For appends: the acknowledged event number; for setups: the writer's last durable event number.</param>
/// <param name="Message">Why the operation failed, for the user.</param>
public readonly record struct OperationOutcome(OutcomeStatus Status, long SegmentLength = 0, long EventNumber = -1, string? Message = null)
{
    public bool IsSuccess => Status == OutcomeStatus.Success;

    public static OperationOutcome Fail(OutcomeStatus status, string message, long segmentLength = 0) => new(status, segmentLength, -1, message);
}

/// <summary>
/// Receives outcomes of operations handed to a container. Called on the container's commit path:
/// implementations only queue the outcome (e.g. a reply) and return.
/// </summary>
public interface IOperationCallback
{
    void OnCompleted(long token, in OperationOutcome outcome);
}

/// <summary>An <see cref="IOperationCallback"/> for one awaited operation.</summary>
internal sealed class OperationCompletion : IOperationCallback
{
    private readonly TaskCompletionSource<OperationOutcome> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<OperationOutcome> Task => _tcs.Task;

    public void OnCompleted(long token, in OperationOutcome outcome) => _tcs.TrySetResult(outcome);
}
