namespace Streams.Ledger.Recovery;

/// <summary>Settings of ledger auto-recovery, run by every bookie process (configuration section "AutoRecovery").</summary>
public sealed record AutoRecoveryOptions
{
    /// <summary>Whether this bookie process audits (when elected) and repairs under-replicated ledgers. On by default.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// How often the auditor checks every ledger even when no bookie came or went. 5 minutes by default: a change of
    /// the bookie registrations starts a check at once, so the periodic one only catches what a missed watch or a
    /// failed repair left behind; each check reads every ledger's metadata.
    /// </summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long a bookie named in ledger metadata must be missing from the registrations before its copies count as
    /// lost and are copied elsewhere. 30 s by default: a bookie restarting (or a ZooKeeper session moving) comes back
    /// within it and costs no copying; a bookie that is gone for good costs 30 s more of reduced replication.
    /// </summary>
    public TimeSpan LostBookieGracePeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a replication worker waits before trying again a ledger it could not repair (no spare bookie, every
    /// copy of an entry unreachable); a bookie registering wakes it earlier. 10 s by default.
    /// </summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Entries a worker copies at the same time. 8 by default: enough to keep two bookies busy over one connection
    /// each; it also bounds the worker's memory to this many entries (at most Bookie:MaxEntrySize each).
    /// </summary>
    public int CopyParallelism { get; init; } = 8;

    public void Validate()
    {
        if (CheckInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException($"AutoRecovery:CheckInterval must be positive (is {CheckInterval}).");
        }

        if (LostBookieGracePeriod < TimeSpan.Zero)
        {
            throw new ArgumentException($"AutoRecovery:LostBookieGracePeriod must not be negative (is {LostBookieGracePeriod}).");
        }

        if (RetryDelay <= TimeSpan.Zero)
        {
            throw new ArgumentException($"AutoRecovery:RetryDelay must be positive (is {RetryDelay}).");
        }

        if (CopyParallelism is < 1 or > 256)
        {
            throw new ArgumentException($"AutoRecovery:CopyParallelism must be between 1 and 256 (is {CopyParallelism}).");
        }
    }
}
