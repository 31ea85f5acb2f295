using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Streams.Ledger;

public enum LedgerState
{
    Open,
    InRecovery,
    Closed,
}

/// <summary>Entries from <see cref="FirstEntryId"/> on are written to these bookies (until the next fragment).</summary>
public sealed record LedgerFragment(long FirstEntryId, IReadOnlyList<string> Bookies);

/// <summary>
/// A ledger's metadata, stored at /ledgers/L{id}: its quorums, state, fragments (one per ensemble change) and, once
/// closed, its last entry. Every change is a compare-and-set on the node's version: a writer whose ledger was taken
/// into recovery by someone else cannot record anything more.
/// </summary>
public sealed record LedgerMetadata(
    int EnsembleSize,
    int WriteQuorum,
    int AckQuorum,
    LedgerState State,
    long LastEntryId,
    long Length,
    IReadOnlyList<LedgerFragment> Fragments,
    long CreatedAtUnixMs)
{
    public const string Root = "/ledgers";
    public const string Prefix = Root + "/L";

    /// <summary>A ledger's node: <see cref="Root"/>/<see cref="NameOf"/>.</summary>
    public static string PathOf(long ledgerId) => Root + "/" + NameOf(ledgerId);

    /// <summary>The ledger id of a ledger's node path (<see cref="PathOf"/>); throws <see cref="FormatException"/> for any other path.</summary>
    public static long IdOf(string path) =>
        path.StartsWith(Root + "/", StringComparison.Ordinal) && TryParseName(path.AsSpan(Root.Length + 1), out var id)
            ? id
            : throw new FormatException($"'{path}' is not a ledger's path ({Prefix} and ten digits).");

    /// <summary>
    /// The name of a ledger's node under <see cref="Root"/>, and of its marks and locks: "L" and the id in ten digits
    /// (the form of the metadata store's sequential nodes).
    /// </summary>
    public static string NameOf(long ledgerId) => "L" + ledgerId.ToString("D10", CultureInfo.InvariantCulture);

    /// <summary>Reads the ledger id of a node name made by <see cref="NameOf"/>; false for any other name.</summary>
    public static bool TryParseName(ReadOnlySpan<char> name, out long ledgerId)
    {
        ledgerId = 0;
        return name.Length > 1 && name[0] == 'L' && long.TryParse(name[1..], NumberStyles.None, CultureInfo.InvariantCulture, out ledgerId);
    }

    /// <summary>The fragment holding an entry.</summary>
    public LedgerFragment FragmentOf(long entryId)
    {
        for (var i = Fragments.Count - 1; i > 0; i--)
        {
            if (Fragments[i].FirstEntryId <= entryId)
            {
                return Fragments[i];
            }
        }

        return Fragments[0];
    }

    /// <summary>The bookies that store an entry: <see cref="WriteQuorum"/> consecutive members of its ensemble, starting at entry mod E.</summary>
    public IReadOnlyList<string> WriteSetOf(long entryId) => WriteSet(FragmentOf(entryId).Bookies, entryId, WriteQuorum);

    /// <summary>The bookies of <paramref name="ensemble"/> that store an entry (see <see cref="WriteSetOf"/>).</summary>
    public static IReadOnlyList<string> WriteSet(IReadOnlyList<string> ensemble, long entryId, int writeQuorum)
    {
        var set = new string[writeQuorum];
        for (var i = 0; i < writeQuorum; i++)
        {
            set[i] = ensemble[MemberOf(entryId, i, ensemble.Count)];
        }

        return set;
    }

    /// <summary>Whether the bookie at <paramref name="position"/> of an ensemble of <paramref name="ensembleSize"/> is in an entry's write set.</summary>
    public static bool InWriteSet(int position, long entryId, int ensembleSize, int writeQuorum)
    {
        for (var i = 0; i < writeQuorum; i++)
        {
            if (MemberOf(entryId, i, ensembleSize) == position)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The striping rule: member <paramref name="member"/> of an entry's write set is at ensemble position (entry + member) mod E.</summary>
    private static int MemberOf(long entryId, int member, int ensembleSize) => (int)((entryId + member) % ensembleSize);

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, LedgerJsonContext.Default.LedgerMetadata);

    public static LedgerMetadata FromJson(byte[] json) =>
        JsonSerializer.Deserialize(json, LedgerJsonContext.Default.LedgerMetadata) ?? throw new InvalidDataException("Empty ledger metadata.");
}

[JsonSerializable(typeof(LedgerMetadata))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class LedgerJsonContext : JsonSerializerContext;
