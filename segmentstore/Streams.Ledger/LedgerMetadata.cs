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

    public static string PathOf(long ledgerId) => Prefix + ledgerId.ToString("D10", CultureInfo.InvariantCulture);

    public static long IdOf(string path) => long.Parse(path.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture);

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

    public static IReadOnlyList<string> WriteSet(IReadOnlyList<string> ensemble, long entryId, int writeQuorum)
    {
        var set = new string[writeQuorum];
        for (var i = 0; i < writeQuorum; i++)
        {
            set[i] = ensemble[(int)((entryId + i) % ensemble.Count)];
        }

        return set;
    }

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, LedgerJsonContext.Default.LedgerMetadata);

    public static LedgerMetadata FromJson(byte[] json) =>
        JsonSerializer.Deserialize(json, LedgerJsonContext.Default.LedgerMetadata) ?? throw new InvalidDataException("Empty ledger metadata.");
}

[JsonSerializable(typeof(LedgerMetadata))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class LedgerJsonContext : JsonSerializerContext;
