namespace Streams.Ledger;

/// <summary>An entry a <see cref="LedgerWriter"/> added and has not yet acknowledged or failed: its copies, acknowledged, in flight and failed.</summary>
internal sealed class PendingAdd(long id, EntryPayload payload, uint crc)
{
    public long Id { get; } = id;

    /// <summary>The caller's bytes, read by each send when it writes its request.</summary>
    public EntryPayload Payload { get; } = payload;

    public uint Crc { get; } = crc;

    public HashSet<string> Acked { get; } = new(StringComparer.Ordinal);

    public HashSet<string> InFlight { get; } = new(StringComparer.Ordinal);

    /// <summary>Bookies that failed this entry: it is not sent to them again.</summary>
    public HashSet<string> Failed { get; } = new(StringComparer.Ordinal);

    public bool Acknowledged { get; set; }

    public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
