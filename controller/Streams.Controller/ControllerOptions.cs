namespace Streams.Controller;

/// <summary>Settings of the controller (configuration section "Controller").</summary>
public sealed record ControllerOptions
{
    /// <summary>Upper bound on a stream's segment count, a guard against typos such as 100000.</summary>
    public int MaxSegmentsPerStream { get; init; } = 1024;

    /// <summary>How long the controller keeps retrying a segment operation while a container is unavailable.</summary>
    public TimeSpan SegmentOperationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often the leading controller records stream cuts and applies retention policies.</summary>
    public TimeSpan RetentionInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A scale whose current step is older than this is driven again by the leading controller (its driver crashed or
    /// a segment store was away). Longer than a step takes when all is well, including the segment operation timeout.
    /// </summary>
    public TimeSpan ScaleStepTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a scale or a seal waits, before it seals anything, for the stream's committing transactions to merge
    /// (a decided commit needs its segments open); past it the step fails and is driven again later.
    /// </summary>
    public TimeSpan CommitWait { get; init; } = TimeSpan.FromSeconds(30);

    public void Validate()
    {
        if (ScaleStepTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Controller:ScaleStepTimeout must be positive.");
        }

        if (RetentionInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("Controller:RetentionInterval must be positive.");
        }

        if (MaxSegmentsPerStream is < 1 or > 65536)
        {
            throw new ArgumentException($"Controller:MaxSegmentsPerStream must be between 1 and 65536 (is {MaxSegmentsPerStream}).");
        }

        if (SegmentOperationTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Controller:SegmentOperationTimeout must be positive.");
        }
    }
}
