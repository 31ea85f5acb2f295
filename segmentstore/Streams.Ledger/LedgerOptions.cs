namespace Streams.Ledger;

/// <summary>Replication settings of new ledgers and the deadlines of bookie requests.</summary>
public sealed record LedgerOptions
{
    /// <summary>Bookies a ledger is striped over (E).</summary>
    public int EnsembleSize { get; init; } = 3;

    /// <summary>Copies of each entry (Qw).</summary>
    public int WriteQuorum { get; init; } = 3;

    /// <summary>Durable copies before an entry is acknowledged (Qa).</summary>
    public int AckQuorum { get; init; } = 2;

    /// <summary>
    /// Deadline of one add on one bookie, connecting included: a copy not stored by then has failed, and the writer
    /// replaces the bookie or carries on without it. Default 2 s: a frozen bookie costs at most that before its
    /// entries move on, which leaves room for fencing and recovery within a failover of a few seconds.
    /// </summary>
    public TimeSpan AddTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Deadline of one read, read-LAC, fence or delete on one bookie, connecting included; a read then tries the
    /// next copy. Default 2 s, for the same reason as <see cref="AddTimeout"/>.
    /// </summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// After a bookie failed, how long it is left alone before it is tried again: connections are not retried
    /// sooner (calls fail at once instead), and a writer sends it no new entries it does not need. Failures are
    /// never permanent: a bookie that answers again (a restarted one) is used as before. Default 1 s.
    /// </summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The connect, keep-alive and request timeout of a bookie connection: the longer of the two deadlines.</summary>
    internal TimeSpan ConnectionTimeout => AddTimeout > ReadTimeout ? AddTimeout : ReadTimeout;

    public void Validate()
    {
        if (AckQuorum < 1 || WriteQuorum < AckQuorum || EnsembleSize < WriteQuorum)
        {
            throw new ArgumentException($"Ledger quorums must satisfy E >= Qw >= Qa >= 1 (E={EnsembleSize}, Qw={WriteQuorum}, Qa={AckQuorum}).");
        }

        if (AddTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Ledger:AddTimeout must be positive, not {AddTimeout}.");
        }

        if (ReadTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Ledger:ReadTimeout must be positive, not {ReadTimeout}.");
        }

        if (RetryDelay <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Ledger:RetryDelay must be positive, not {RetryDelay}.");
        }
    }
}
