namespace Streams.Bookie.Storage;

/// <summary>
/// What a bookie knows of one ledger in memory: where each entry's record sits in the journal, the last add confirmed,
/// the last entry and whether (and where) it was fenced. Rebuilt from the journal at start; guarded by the store's lock.
/// </summary>
internal sealed class LedgerState
{
    public Dictionary<long, long> Entries { get; } = [];

    public long LastAddConfirmed { get; set; } = -1;

    public long LastEntry { get; set; } = -1;

    public bool Fenced { get; set; }

    public long FenceAddress { get; set; } = -1;

    public long MinAddress()
    {
        var min = FenceAddress >= 0 ? FenceAddress : long.MaxValue;
        foreach (var address in Entries.Values)
        {
            min = Math.Min(min, address);
        }

        return min;
    }
}
