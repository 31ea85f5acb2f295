using System.Text.Json;
using System.Text.Json.Serialization;
using Streams.Coordination.Metadata;

namespace Streams.Ledger.Recovery;

/// <summary>Why a ledger is marked: the bookies whose copies of its entries the auditor found lost.</summary>
internal sealed record UnderReplicatedMark(IReadOnlyList<string> LostBookies, long MarkedAtUnixMs)
{
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, RecoveryJsonContext.Default.UnderReplicatedMark);

    public static UnderReplicatedMark FromJson(byte[] json) =>
        JsonSerializer.Deserialize(json, RecoveryJsonContext.Default.UnderReplicatedMark) ?? throw new InvalidDataException("Empty under-replication mark.");
}

/// <summary>
/// The marks the auditor leaves and the workers clear, in the metadata store: /ledger-recovery/underreplicated/L{id}
/// holds a <see cref="UnderReplicatedMark"/>; /ledger-recovery/locks/L{id} is the ephemeral lock of the worker that
/// repairs it (it vanishes with that worker's session, so a dead worker's ledger is picked up by another);
/// /ledger-recovery/auditor is the auditor's leader election node. None of it is under /ledgers, whose children are
/// the ledgers themselves.
/// </summary>
internal sealed class UnderReplicatedLedgers(IMetadataStore store)
{
    public const string Root = "/ledger-recovery";
    public const string MarksPath = Root + "/underreplicated";
    public const string LocksPath = Root + "/locks";
    public const string AuditorPath = Root + "/auditor";

    public IMetadataStore Store { get; } = store;

    public static string MarkOf(long ledgerId) => MarksPath + "/" + LedgerMetadata.NameOf(ledgerId);

    public static string LockOf(long ledgerId) => LocksPath + "/" + LedgerMetadata.NameOf(ledgerId);

    /// <summary>The ids of the marked ledgers, and a task that completes when a mark is added or removed.</summary>
    public async Task<(IReadOnlyList<long> Ledgers, Task Changed)> ListAndWatchAsync(CancellationToken cancellationToken)
    {
        var (children, changed) = await Store.GetChildrenAndWatchAsync(MarksPath, cancellationToken);
        return (Parse(children), changed);
    }

    public async Task<IReadOnlyList<long>> ListAsync(CancellationToken cancellationToken) => Parse(await Store.GetChildrenAsync(MarksPath, cancellationToken));

    public async Task<(UnderReplicatedMark Mark, long Version)?> GetAsync(long ledgerId, CancellationToken cancellationToken) =>
        await Store.GetAsync(MarkOf(ledgerId), cancellationToken) is { } stored ? (UnderReplicatedMark.FromJson(stored.Data), stored.Version) : null;

    /// <summary>Marks a ledger, or updates its mark when the lost bookies differ. True when the mark changed.</summary>
    public async Task<bool> MarkAsync(long ledgerId, IReadOnlyList<string> lostBookies, CancellationToken cancellationToken)
    {
        var mark = new UnderReplicatedMark(lostBookies, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (await Store.TryCreateAsync(MarkOf(ledgerId), mark.ToJson(), cancellationToken))
        {
            return true;
        }

        if (await GetAsync(ledgerId, cancellationToken) is not var (existing, version) || existing.LostBookies.Order(StringComparer.Ordinal).SequenceEqual(lostBookies.Order(StringComparer.Ordinal)))
        {
            // Cleared meanwhile (the next audit marks it again if it must) or already saying the same.
            return false;
        }

        return await Store.TrySetAsync(MarkOf(ledgerId), (mark with { MarkedAtUnixMs = existing.MarkedAtUnixMs }).ToJson(), version, cancellationToken) is not null;
    }

    /// <summary>Removes a mark if it is still at <paramref name="version"/> (-1: any); a mark changed meanwhile stays.</summary>
    public async Task<bool> ClearAsync(long ledgerId, long version, CancellationToken cancellationToken) =>
        await Store.TryDeleteAsync(MarkOf(ledgerId), version, cancellationToken);

    /// <summary>Takes the repair lock of a ledger for this store's session; false if another worker holds it.</summary>
    public async Task<bool> TryLockAsync(long ledgerId, string worker, CancellationToken cancellationToken) =>
        await Store.TryCreateEphemeralAsync(LockOf(ledgerId), System.Text.Encoding.UTF8.GetBytes(worker), cancellationToken);

    public async Task UnlockAsync(long ledgerId) => await Store.TryDeleteAsync(LockOf(ledgerId), -1, CancellationToken.None);

    private static List<long> Parse(IReadOnlyList<string> children)
    {
        var ids = new List<long>(children.Count);
        foreach (var child in children)
        {
            if (LedgerMetadata.TryParseName(child, out var id))
            {
                ids.Add(id);
            }
        }

        return ids;
    }
}

[JsonSerializable(typeof(UnderReplicatedMark))]
internal sealed partial class RecoveryJsonContext : JsonSerializerContext;
