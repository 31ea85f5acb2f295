using System.Diagnostics.CodeAnalysis;

namespace Streams.Common.Naming;

/// <summary>
/// A transaction segment's name: its parent segment's qualified name, then "#txn." and the transaction id as 32 hex
/// digits ("scope/stream/3.#epoch.2#txn.0123456789abcdef0123456789abcdef"). The part before ".#epoch." is the parent's,
/// so a transaction segment lives in its parent's container (<see cref="ContainerMapper"/>) and merging it stays local.
/// </summary>
public static class TransactionName
{
    private const string Marker = "#txn.";

    /// <summary>The transaction segment of <paramref name="transaction"/> under <paramref name="parent"/>.</summary>
    public static string Compose(string parent, Guid transaction) => parent + Marker + transaction.ToString("N");

    /// <summary>Whether <paramref name="name"/> names a transaction segment (without checking its parent).</summary>
    public static bool IsTransaction(string name) => name.Contains(Marker, StringComparison.Ordinal);

    /// <summary>Splits a transaction segment's name into its parent segment and the transaction id.</summary>
    public static bool TryParse(string? name, [NotNullWhen(true)] out SegmentName? parent, out Guid transaction)
    {
        parent = null;
        transaction = Guid.Empty;
        var marker = name?.LastIndexOf(Marker, StringComparison.Ordinal) ?? -1;
        if (marker <= 0 || name!.Length - marker - Marker.Length != 32
            || !Guid.TryParseExact(name.AsSpan(marker + Marker.Length), "N", out transaction)
            || !SegmentName.TryParse(name[..marker], out parent)
            || name[(marker + Marker.Length)..] != transaction.ToString("N"))
        {
            parent = null;
            return false;
        }

        return true;
    }

    /// <summary>Whether <paramref name="name"/> is a stream segment's or a transaction segment's qualified name.</summary>
    public static bool IsSegmentOrTransaction(string? name) => SegmentName.TryParse(name, out _) || TryParse(name, out _, out _);

    /// <summary>The parent's name of a transaction segment, or <paramref name="name"/> itself.</summary>
    public static string ParentOf(string name)
    {
        var marker = name.LastIndexOf(Marker, StringComparison.Ordinal);
        return marker <= 0 ? name : name[..marker];
    }
}
