using System.Text.Json.Serialization;

namespace Streams.Controller.Transactions;

/// <summary>Where a transaction is in its life (transactions.proto TransactionState).</summary>
public enum TransactionRecordState
{
    Open,
    Committing,
    Committed,
    Aborting,
    Aborted,
}

/// <summary>
/// A transaction as stored at /transactions/{scope}/{stream}/records/{id}. <see cref="Segments"/> are the ids of its
/// epoch's segments when it began (an abort deletes a transaction segment under each); <see cref="Touched"/> those its
/// commit merges into, recorded with <see cref="TransactionRecordState.Committing"/>.
/// </summary>
public sealed record TransactionRecord
{
    public required string Id { get; init; }

    public required string Scope { get; init; }

    public required string Stream { get; init; }

    public int Epoch { get; init; }

    public IReadOnlyList<long> Segments { get; init; } = [];

    public TransactionRecordState State { get; init; }

    public long CreatedAtUnixMs { get; init; }

    public long LeaseMs { get; init; }

    public long LeaseExpiresAtUnixMs { get; init; }

    public long MaxExpiresAtUnixMs { get; init; }

    public long CommittingAtUnixMs { get; init; }

    public long FinishedAtUnixMs { get; init; }

    public string? AbortReason { get; init; }

    public IReadOnlyList<long> Touched { get; init; } = [];

    /// <summary>
    /// Touched segments sealed by a scale since the transaction began, each with the segments that own its keys now:
    /// their transaction segment's events are merged into those by routing key (recorded with COMMITTING).
    /// </summary>
    public IReadOnlyList<RerouteRecord>? Rerouted { get; init; }

    /// <summary>Why an open transaction must be aborted at <paramref name="now"/>, or null while it may live on.</summary>
    public string? ExpiryAt(long now) =>
        State != TransactionRecordState.Open ? null
        : now >= MaxExpiresAtUnixMs ? $"it reached its maximum lifetime ({TimeSpan.FromMilliseconds(MaxExpiresAtUnixMs - CreatedAtUnixMs).TotalSeconds:0} s)"
        : now >= LeaseExpiresAtUnixMs ? $"its lease ({LeaseMs / 1000.0:0.#} s) expired without a ping"
        : null;
}

/// <summary>A sealed segment a commit merges into <see cref="Targets"/>, the segments that own its keys at the commit.</summary>
public sealed record RerouteRecord(long Segment, IReadOnlyList<long> Targets);

[JsonSerializable(typeof(TransactionRecord))]
[JsonSerializable(typeof(List<long>))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class TransactionJsonContext : JsonSerializerContext;
