namespace Streams.Ledger.Recovery;

/// <summary>Which bookies of a ledger hold copies of entries: what the auditor and the workers both decide from metadata alone.</summary>
internal static class LedgerReplicas
{
    /// <summary>The entries of fragment <paramref name="index"/> of a closed ledger, [First, Last]; empty when Last &lt; First.</summary>
    public static (long First, long Last) RangeOf(LedgerMetadata metadata, int index)
    {
        var first = metadata.Fragments[index].FirstEntryId;
        var last = index + 1 < metadata.Fragments.Count ? metadata.Fragments[index + 1].FirstEntryId - 1 : metadata.LastEntryId;
        return (first, Math.Min(last, metadata.LastEntryId));
    }

    /// <summary>Whether the bookie at <paramref name="position"/> of fragment <paramref name="index"/> stores any entry of it.</summary>
    public static bool HoldsEntries(LedgerMetadata metadata, int index, int position)
    {
        var (first, last) = RangeOf(metadata, index);
        var ensembleSize = metadata.Fragments[index].Bookies.Count;
        for (var entry = first; entry <= last && entry < first + ensembleSize; entry++)
        {
            if (LedgerMetadata.InWriteSet(position, entry, ensembleSize, metadata.WriteQuorum))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The distinct bookies, lost by <paramref name="isLost"/>, that hold entries of the ledger: its copies that must be made again.</summary>
    public static List<string> LostCopies(LedgerMetadata metadata, Func<string, bool> isLost)
    {
        var lost = new List<string>();
        for (var i = 0; i < metadata.Fragments.Count; i++)
        {
            var bookies = metadata.Fragments[i].Bookies;
            for (var position = 0; position < bookies.Count; position++)
            {
                if (isLost(bookies[position]) && !lost.Contains(bookies[position], StringComparer.Ordinal) && HoldsEntries(metadata, i, position))
                {
                    lost.Add(bookies[position]);
                }
            }
        }

        return lost;
    }
}
