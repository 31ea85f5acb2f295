using System.Buffers;
using System.IO.Hashing;
using System.Text;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// Merging transaction segments into their parent (docs/transactions.md).
/// <para>
/// A merge copies: each source (a transaction's segment, "parent#txn.id", in this container by placement) is sealed,
/// read whole and appended to the parent as one block, then deleted. One block is one log operation, so a reader sees
/// all of a transaction's events on the parent or none of them, and a transaction segment is bounded to what one block
/// carries (<see cref="ContainerMetadata.MaxTransactionSegmentBytes"/>). The block is written under a writer id derived
/// from the source's name (<see cref="MergeWriterOf"/>) with event number 0, so a merge repeated after a crash, a lost
/// answer or a second controller is dropped as a duplicate by the parent's writer record; a source that is gone was
/// merged (or never written) already. Merges hold a whole source in memory: at most
/// <see cref="MaxConcurrentMerges"/> at a time per container.
/// </para>
/// </summary>
public sealed partial class SegmentContainer
{
    /// <summary>Sources one container copies at a time (each up to a log record, about 10 MiB, in memory).</summary>
    public const int MaxConcurrentMerges = 2;

    private readonly SemaphoreSlim _merges = new(MaxConcurrentMerges, MaxConcurrentMerges);

    /// <summary>The most a transaction segment holds: what one merge carries atomically.</summary>
    public long MaxTransactionSegmentBytes => _metadata.MaxTransactionSegmentBytes;

    /// <summary>
    /// Merges <paramref name="sources"/> into <paramref name="target"/>, in order, each atomically and idempotently.
    /// Returns the target's outcome: success with its length, or why the merge cannot happen (target missing or sealed,
    /// a source that is not one of its transaction segments).
    /// </summary>
    public async Task<(OperationOutcome Outcome, int Merged)> MergeAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken = default)
    {
        foreach (var source in sources)
        {
            if (TransactionName.ParentOf(source) != target || !TransactionName.TryParse(source, out _, out _))
            {
                return (OperationOutcome.Fail(OutcomeStatus.InvalidArgument, $"{source} is not a transaction segment of {target}."), 0);
            }
        }

        if (GetInfo(target) is not { } info)
        {
            return (OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {target} does not exist."), 0);
        }

        var merged = 0;
        var outcome = new OperationOutcome(OutcomeStatus.Success, info.Length);
        foreach (var source in sources)
        {
            await _merges.WaitAsync(cancellationToken);
            try
            {
                (outcome, var copied) = await MergeOneAsync(target, source, cancellationToken);
                if (!outcome.IsSuccess)
                {
                    return (outcome, merged);
                }

                merged += copied ? 1 : 0;
            }
            finally
            {
                _merges.Release();
            }
        }

        return (outcome, merged);
    }

    /// <summary>The writer id a source's merge block carries: a hash of the source's name, the same on every attempt.</summary>
    public static Guid MergeWriterOf(string source) => new(XxHash128.Hash(Encoding.UTF8.GetBytes(source)));

    private async Task<(OperationOutcome Outcome, bool Copied)> MergeOneAsync(string target, string source, CancellationToken cancellationToken)
    {
        var sealing = await SealSegmentAsync(source, cancellationToken);
        if (sealing.Status == OutcomeStatus.NoSuchSegment)
        {
            // Merged and deleted by an earlier attempt, or never written: nothing left to do.
            return (new OperationOutcome(OutcomeStatus.Success, GetInfo(target)?.Length ?? 0), false);
        }

        if (!sealing.IsSuccess)
        {
            return (sealing, false);
        }

        var info = GetInfo(source) ?? throw new InvalidOperationException($"{source} vanished while it was merged.");
        var length = checked((int)(info.Length - info.StartOffset));
        var outcome = new OperationOutcome(OutcomeStatus.Success, GetInfo(target)?.Length ?? 0);
        if (length > 0)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                await ReadWholeAsync(source, info.StartOffset, buffer.AsMemory(0, length), cancellationToken);
                var data = new ReadOnlySequence<byte>(buffer, 0, length);
                var events = CountEvents(data, source);
                outcome = await AppendAsync(target, MergeWriterOf(source), 0, events, null, buffer.AsMemory(0, length), cancellationToken);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            if (!outcome.IsSuccess)
            {
                return (outcome, false);
            }
        }

        var deleted = await DeleteSegmentAsync(source, cancellationToken);
        return deleted.IsSuccess || deleted.Status == OutcomeStatus.NoSuchSegment ? (outcome, true) : (deleted, false);
    }

    private async Task ReadWholeAsync(string source, long offset, Memory<byte> into, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < into.Length)
        {
            using var read = await ReadAsync(source, offset + filled, into.Length - filled, TimeSpan.Zero, cancellationToken);
            if (read.Error is { } error)
            {
                throw new InvalidOperationException($"Reading {source} at {offset + filled} for its merge failed: {error.Message}");
            }

            if (read.Status != ReadStatus.Ok || read.Data.IsEmpty)
            {
                throw new InvalidOperationException($"Reading {source} at {offset + filled} for its merge answered {read.Status} before its sealed length.");
            }

            read.Data.CopyTo(into.Span[filled..]);
            filled += (int)read.Data.Length;
        }
    }

    private static int CountEvents(ReadOnlySequence<byte> data, string source)
    {
        var count = 0;
        while (EventFraming.TryReadEvent(ref data, out _))
        {
            count++;
        }

        return data.IsEmpty ? count : throw new InvalidDataException($"{source} ends inside an event; it cannot be merged.");
    }
}
