namespace Streams.Common.Resilience;

/// <summary>
/// How <see cref="RetryLoop"/> backs off after a failure: exponentially from <see cref="FirstDelay"/> up to
/// <see cref="MaxDelay"/>, with jitter so that members that failed together (a ZooKeeper outage hits every one of
/// them) do not retry in lock step. A success resets the back-off.
/// </summary>
public sealed record RetryOptions
{
    /// <summary>
    /// The median delay before the first retry. 1 s by default: long enough not to hammer a metadata store that is
    /// failing over, short enough that a member rejoins within a ZooKeeper session timeout.
    /// </summary>
    public TimeSpan FirstDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The longest delay between two attempts. 30 s by default: a member that kept failing still comes back within
    /// half a minute of its dependency's return.
    /// </summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The clock the delays run on; tests replace it.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The defaults.</summary>
    public static RetryOptions Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> with a message naming the bad setting.</summary>
    public void Validate()
    {
        if (FirstDelay <= TimeSpan.Zero)
        {
            throw new ArgumentException($"RetryOptions.FirstDelay must be positive, not {FirstDelay}.");
        }

        if (MaxDelay < FirstDelay)
        {
            throw new ArgumentException($"RetryOptions.MaxDelay ({MaxDelay}) must be at least FirstDelay ({FirstDelay}).");
        }
    }
}
