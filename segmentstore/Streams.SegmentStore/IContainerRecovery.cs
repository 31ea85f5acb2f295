namespace Streams.SegmentStore;

/// <summary>What a recovery replayed, and where the log continues.</summary>
/// <param name="Frames">Frames replayed.</param>
/// <param name="NextSequence">The sequence number of the next frame the container writes.</param>
internal readonly record struct RecoveryResult(int Frames, long NextSequence);

/// <summary>
/// Rebuilds a container's state from its durable log, before the container serves anything.
/// <para>
/// Contract: every frame is verified (checksum, and that frame sequence numbers have no gap) and its operations replayed
/// into the metadata; the newest frames warm the read index; the storage writer learns the truncation points and
/// pending deletions. A corrupt or missing frame stops recovery with <see cref="DataCorruptionException"/>: serving a
/// container whose history has a hole would hand out wrong data. It writes nothing to the log and nothing to Tier 2.
/// </para>
/// </summary>
internal interface IContainerRecovery
{
    /// <summary>Replays the log (opened already) from its truncation point to its tail.</summary>
    Task<RecoveryResult> RecoverAsync(CancellationToken cancellationToken = default);
}
