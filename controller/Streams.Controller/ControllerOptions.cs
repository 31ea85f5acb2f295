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

    public void Validate()
    {
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
