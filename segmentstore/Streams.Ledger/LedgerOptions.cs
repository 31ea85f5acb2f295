namespace Streams.Ledger;

/// <summary>Replication settings of new ledgers and timeouts of bookie requests.</summary>
public sealed record LedgerOptions
{
    /// <summary>Bookies a ledger is striped over (E).</summary>
    public int EnsembleSize { get; init; } = 3;

    /// <summary>Copies of each entry (Qw).</summary>
    public int WriteQuorum { get; init; } = 3;

    /// <summary>Durable copies before an entry is acknowledged (Qa).</summary>
    public int AckQuorum { get; init; } = 2;

    /// <summary>A bookie that does not answer within this long is treated as failed.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public void Validate()
    {
        if (AckQuorum < 1 || WriteQuorum < AckQuorum || EnsembleSize < WriteQuorum)
        {
            throw new ArgumentException($"Ledger quorums must satisfy E >= Qw >= Qa >= 1 (E={EnsembleSize}, Qw={WriteQuorum}, Qa={AckQuorum}).");
        }

        if (RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Ledger:RequestTimeout must be positive.");
        }
    }
}
