using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A checkpoint on its way to the log: its pages, one frame each, being serialized off the metadata's lock from a
/// snapshot taken at its frame's place in the log, and who waits for it to become durable (a truncation point).
/// </summary>
/// <param name="Id">Unique across owners of the log (the owner's epoch in the high half), so pages of checkpoints never mix.</param>
/// <param name="Pages">The page frames, unsealed: the operation log gives them their sequence numbers in the checkpoint's turn.</param>
/// <param name="Completion">Answered once every page is durable.</param>
public sealed record PendingCheckpoint(long Id, Task<List<DataFrameBuilder>> Pages, IOperationCallback Completion);
