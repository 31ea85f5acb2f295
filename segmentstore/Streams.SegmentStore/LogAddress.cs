namespace Streams.SegmentStore;

/// <summary>
/// Where a record lives in a durable log: a ledger and an entry in it. Logs with a single underlying
/// journal use ledger 0 and the journal address as the entry. Addresses order records in log order.
/// </summary>
public readonly record struct LogAddress(long LedgerId, long EntryId) : IComparable<LogAddress>
{
    public int CompareTo(LogAddress other)
    {
        var c = LedgerId.CompareTo(other.LedgerId);
        return c != 0 ? c : EntryId.CompareTo(other.EntryId);
    }

    public static bool operator <(LogAddress left, LogAddress right) => left.CompareTo(right) < 0;

    public static bool operator >(LogAddress left, LogAddress right) => left.CompareTo(right) > 0;

    public static bool operator <=(LogAddress left, LogAddress right) => left.CompareTo(right) <= 0;

    public static bool operator >=(LogAddress left, LogAddress right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{LedgerId}:{EntryId}";
}
