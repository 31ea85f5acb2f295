using Streams.Contracts.Bookie;

namespace Streams.Bookie.Storage;

/// <summary>What a journal record did once committed, and the ledger summary to answer with.</summary>
internal readonly record struct RecordOutcome(BookieStatus Status, LedgerSummary Summary);

/// <summary>
/// A journal record on its way to a group commit, with the caller waiting for its outcome. Its address is -1 while it
/// waits for journal memory (<see cref="WaitingRecord"/>) and set, under the store's lock, once it is enqueued.
/// </summary>
internal sealed class PendingRecord(JournalRecordType type, long ledger, long entry, long lastAddConfirmed, int size)
{
    public long Address { get; set; } = -1;

    public JournalRecordType Type { get; } = type;

    public long Ledger { get; } = ledger;

    public long Entry { get; } = entry;

    public long LastAddConfirmed { get; } = lastAddConfirmed;

    public int Size { get; } = size;

    public long? RelocatedFrom { get; init; }

    public TaskCompletionSource<RecordOutcome> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
