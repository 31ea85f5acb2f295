using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore;

/// <summary>
/// A container's storage writer: moves durable segment data from the log (Tier 1) to Tier 2 as chunks, records them in
/// the log, writes checkpoints of the metadata, truncates the log behind them, and deletes chunks nothing needs.
/// <para>
/// Contract: a chunk is recorded in the log only once it is whole in Tier 2; the log is truncated only at a durable
/// checkpoint older than every byte not yet in Tier 2; nothing is deleted from Tier 2 without first confirming that the
/// log is still this owner's. Tier 2 failures are retried with back-off, never surfaced to appends except through the
/// Tier 1 budget. Its notifications (<see cref="OnDurable"/>, <see cref="OnCheckpointDurable"/>) take no other part's
/// lock and never block.
/// </para>
/// </summary>
internal interface IStorageWriter : IAsyncDisposable
{
    /// <summary>Accepted bytes not yet durably in Tier 2.</summary>
    long UnflushedBytes { get; }

    /// <summary>True when the Tier 1 budget is full (appends wait).</summary>
    bool OverBudget { get; }

    /// <summary>Whether the last Tier 2 request failed (the writer is retrying).</summary>
    bool Tier2Failing { get; }

    /// <summary>
    /// Takes over the state recovery rebuilt: durable checkpoints (truncation points, oldest first), deleted segments whose
    /// chunks may remain, and the bytes not in Tier 2.
    /// </summary>
    void OnRecovered(IReadOnlyList<LogAddress> checkpoints, IReadOnlyList<DeletedSegment> deleted, long unflushedBytes);

    /// <summary>Starts the writer (once the container runs); does nothing without a Tier 2.</summary>
    void Start();

    /// <summary>A frame was applied: wake up if it sealed, truncated or deleted something, and delete the chunks of deleted segments.</summary>
    void OnDurable(bool changed, IReadOnlyList<DeletedSegment> deleted);

    /// <summary>A checkpoint is durable: its first frame, at <paramref name="address"/>, becomes a truncation point.</summary>
    void OnCheckpointDurable(LogAddress address);

    /// <summary>
    /// Deletes this container's chunks that no segment references and that an earlier owner wrote. Returns how many went.
    /// </summary>
    Task<int> SweepOrphansAsync(CancellationToken cancellationToken = default);
}
