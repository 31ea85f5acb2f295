using Streams.Contracts.Controller;

namespace Streams.Client.Transactions;

/// <summary>A transaction as the controller describes it (<c>streams transaction list|status</c>).</summary>
/// <param name="Id">32 hex digits.</param>
/// <param name="Status">Where it is in its life.</param>
/// <param name="Epoch">The stream epoch whose segments it writes.</param>
/// <param name="CreatedAt">When it began.</param>
/// <param name="LeaseExpiresAt">When it is aborted unless renewed (open transactions).</param>
/// <param name="MaxExpiresAt">When it is aborted if still open, whatever its pings.</param>
/// <param name="FinishedAt">When it was committed or aborted; null before.</param>
/// <param name="AbortReason">Why it was aborted; empty otherwise.</param>
/// <param name="SegmentIds">The segments its commit merges into (known once committing).</param>
public sealed record TransactionDescription(
    string Id, TransactionStatus Status, int Epoch, DateTimeOffset CreatedAt, DateTimeOffset LeaseExpiresAt, DateTimeOffset MaxExpiresAt,
    DateTimeOffset? FinishedAt, string AbortReason, IReadOnlyList<long> SegmentIds)
{
    internal static TransactionDescription From(TransactionInfo info) => new(
        info.TransactionId,
        TransactionStates.StatusOf(info.State),
        info.Epoch,
        DateTimeOffset.FromUnixTimeMilliseconds(info.CreatedAtUnixMs),
        DateTimeOffset.FromUnixTimeMilliseconds(info.LeaseExpiresAtUnixMs),
        DateTimeOffset.FromUnixTimeMilliseconds(info.MaxExpiresAtUnixMs),
        info.FinishedAtUnixMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(info.FinishedAtUnixMs),
        info.AbortReason,
        [.. info.SegmentIds]);
}

/// <summary>The controller's transaction states as the SDK names them.</summary>
internal static class TransactionStates
{
    internal static TransactionStatus StatusOf(TransactionState state) => state switch
    {
        TransactionState.Open => TransactionStatus.Open,
        TransactionState.Committing => TransactionStatus.Committing,
        TransactionState.Committed => TransactionStatus.Committed,
        TransactionState.Aborting => TransactionStatus.Aborting,
        _ => TransactionStatus.Aborted,
    };
}
