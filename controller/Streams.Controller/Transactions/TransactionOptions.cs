namespace Streams.Controller.Transactions;

/// <summary>Transaction settings (configuration section "Transactions"); the defaults follow docs/transactions.md.</summary>
public sealed record TransactionOptions
{
    /// <summary>Lease of a transaction that asks for none.</summary>
    public TimeSpan DefaultLease { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Longest lease a transaction may ask for.</summary>
    public TimeSpan MaxLease { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>A transaction lives at most min(this × its lease, <see cref="MaxLifetime"/>), whatever its pings.</summary>
    public int LifetimeLeases { get; init; } = 1000;

    /// <summary>The longest any transaction stays open.</summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Transactions committing on one stream past which new ones are refused (RESOURCE_EXHAUSTED).</summary>
    public int MaxCommittingPerStream { get; init; } = 1000;

    /// <summary>Most transactions one merge round takes per stream (one merge request per segment for all of them).</summary>
    public int CommitBatch { get; init; } = 100;

    /// <summary>How often the leading controller looks for expired leases, stalled commits and finished records.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A commit recorded this long ago and not finished is driven again by the leading controller (its driver may be gone).</summary>
    public TimeSpan StalledCommitAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long committed and aborted transactions stay listed (and answer status) before they are forgotten.</summary>
    public TimeSpan FinishedRetention { get; init; } = TimeSpan.FromMinutes(10);

    public void Validate()
    {
        if (DefaultLease <= TimeSpan.Zero || MaxLease < DefaultLease)
        {
            throw new ArgumentException($"Transactions:DefaultLease must be positive and at most Transactions:MaxLease (are {DefaultLease} and {MaxLease}).");
        }

        if (LifetimeLeases < 1 || MaxLifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("Transactions:LifetimeLeases and Transactions:MaxLifetime must be positive.");
        }

        if (MaxCommittingPerStream < 1 || CommitBatch < 1 || CommitBatch > 1000)
        {
            throw new ArgumentException($"Transactions:MaxCommittingPerStream must be positive and Transactions:CommitBatch between 1 and 1000 (are {MaxCommittingPerStream} and {CommitBatch}).");
        }

        if (SweepInterval <= TimeSpan.Zero || StalledCommitAfter <= TimeSpan.Zero || FinishedRetention < TimeSpan.Zero)
        {
            throw new ArgumentException("Transactions:SweepInterval and StalledCommitAfter must be positive, FinishedRetention not negative.");
        }
    }
}
