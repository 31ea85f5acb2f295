using System.Buffers;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Microsoft.Extensions.Logging;
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
/// merged (or never written) already. Merges hold their sources in memory: groups of up to
/// <see cref="MergeGroupBytes"/>, at most <see cref="MaxConcurrentMerges"/> groups at a time per container.
/// </para>
/// </summary>
public sealed partial class SegmentContainer
{
    /// <summary>Groups of sources one container copies at a time (each group up to <see cref="MergeGroupBytes"/> in memory).</summary>
    public const int MaxConcurrentMerges = 2;

    private readonly SemaphoreSlim _merges = new(MaxConcurrentMerges, MaxConcurrentMerges);

    /// <summary>The most a transaction segment holds: what one merge carries atomically.</summary>
    public long MaxTransactionSegmentBytes => _metadata.MaxTransactionSegmentBytes;

    /// <summary>
    /// Merges <paramref name="sources"/> into <paramref name="target"/>, in order, each atomically and idempotently.
    /// Returns the target's outcome: success with its length, or why the merge cannot happen (target missing or sealed,
    /// a source that is not one of its transaction segments), and how many sources this call copied.
    /// <para>
    /// Two log round trips for all the sources of a call: the seals, then every source's block followed by its deletion,
    /// accepted back to back. A deletion accepted after its block is durable only if the block is (the durable view is a
    /// prefix of the log), and a block refused at acceptance deletes nothing. Sources are copied in groups of at most
    /// <see cref="MergeGroupBytes"/> (or one larger source), one group per container at a time per slot.
    /// </para>
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

        if (info.Sealed)
        {
            // A repeat of a merge that was done before the target was sealed (a second driver) has nothing left to do.
            return sources.All(s => GetInfo(s) is null)
                ? (new OperationOutcome(OutcomeStatus.Success, info.Length), 0)
                : (OperationOutcome.Fail(OutcomeStatus.SegmentSealed, $"Segment {target} is sealed: nothing can be merged into it."), 0);
        }

        // Sealed first, so nothing lands in a source after it is read; a source that is gone was merged (or never written).
        var seals = await Task.WhenAll(sources.Select(s => SealSegmentAsync(s, cancellationToken)));
        var present = new List<(string Name, long Start, int Length)>();
        for (var i = 0; i < sources.Count; i++)
        {
            if (seals[i].Status == OutcomeStatus.NoSuchSegment)
            {
                continue;
            }

            if (!seals[i].IsSuccess)
            {
                return (seals[i], 0);
            }

            var source = GetInfo(sources[i]) ?? throw new InvalidOperationException($"{sources[i]} vanished while it was merged.");
            present.Add((sources[i], source.StartOffset, checked((int)(source.Length - source.StartOffset))));
        }

        var merged = 0;
        var outcome = new OperationOutcome(OutcomeStatus.Success, info.Length);
        for (var first = 0; first < present.Count;)
        {
            var count = 1;
            for (long bytes = present[first].Length; first + count < present.Count && bytes + present[first + count].Length <= MergeGroupBytes; count++)
            {
                bytes += present[first + count].Length;
            }

            await _merges.WaitAsync(cancellationToken);
            try
            {
                outcome = await MergeGroupAsync(target, present.GetRange(first, count), cancellationToken);
            }
            finally
            {
                _merges.Release();
            }

            if (!outcome.IsSuccess)
            {
                return (outcome, merged);
            }

            merged += count;
            first += count;
        }

        return (merged == 0 ? new OperationOutcome(OutcomeStatus.Success, GetInfo(target)?.Length ?? info.Length) : outcome, merged);
    }

    /// <summary>
    /// Appends parts of transaction segments of other segments of the target's stream (a commit across a scale: the
    /// controller split them by routing key), in order, each as one block deduplicated by its source's name. Nothing is
    /// deleted: the controller deletes the sources once every part is in.
    /// </summary>
    public async Task<(OperationOutcome Outcome, int Merged)> MergePartsAsync(string target, IReadOnlyList<(string Source, ReadOnlyMemory<byte> Data, int Events)> parts, CancellationToken cancellationToken = default)
    {
        if (!SegmentName.TryParse(target, out var targetName))
        {
            return (OperationOutcome.Fail(OutcomeStatus.InvalidArgument, $"'{target}' is not a segment name."), 0);
        }

        foreach (var (source, data, events) in parts)
        {
            if (!TransactionName.TryParse(source, out var parent, out _) || parent.Value.StreamName != targetName.Value.StreamName)
            {
                return (OperationOutcome.Fail(OutcomeStatus.InvalidArgument, $"{source} is not a transaction segment of {targetName.Value.StreamName}."), 0);
            }

            var invalid = data.IsEmpty || events <= 0 ? "it is empty" : EventFraming.Validate(new ReadOnlySequence<byte>(data), events);
            if (invalid is not null)
            {
                return (OperationOutcome.Fail(OutcomeStatus.InvalidArgument, $"The part of {source} is not {events} whole events: {invalid}."), 0);
            }
        }

        var pending = new List<Task<OperationOutcome>>();
        foreach (var (source, data, events) in parts)
        {
            var (accepted, appended) = await AcceptAppendAsync(target, MergeWriterOf(source), events, data, cancellationToken);
            if (!accepted)
            {
                await Task.WhenAll(pending);
                return (await appended, pending.Count);
            }

            pending.Add(appended);
        }

        foreach (var done in await Task.WhenAll(pending))
        {
            if (!done.IsSuccess)
            {
                return (done, 0);
            }
        }

        return (new OperationOutcome(OutcomeStatus.Success, GetInfo(target)?.Length ?? 0), parts.Count);
    }

    /// <summary>Bytes of sources one merge holds in memory at a time (a single larger source is copied alone).</summary>
    public const int MergeGroupBytes = 16 * 1024 * 1024;

    /// <summary>The writer id a source's merge block carries: a hash of the source's name, the same on every attempt.</summary>
    public static Guid MergeWriterOf(string source) => ContainerMetadata.MergeWriterOf(source);

    /// <summary>Copies sealed sources into the target in order, each block followed by its source's deletion.</summary>
    private async Task<OperationOutcome> MergeGroupAsync(string target, List<(string Name, long Start, int Length)> group, CancellationToken cancellationToken)
    {
        var buffers = new byte[group.Count][];
        var pending = new List<Task<OperationOutcome>>();
        try
        {
            for (var i = 0; i < group.Count; i++)
            {
                buffers[i] = ArrayPool<byte>.Shared.Rent(Math.Max(1, group[i].Length));
                await ReadWholeAsync(group[i].Name, group[i].Start, buffers[i].AsMemory(0, group[i].Length), cancellationToken);
            }

            for (var i = 0; i < group.Count; i++)
            {
                var (name, _, length) = group[i];
                if (length > 0)
                {
                    var data = buffers[i].AsMemory(0, length);
                    var (accepted, appended) = await AcceptAppendAsync(target, MergeWriterOf(name), CountEvents(new ReadOnlySequence<byte>(data), name), data, cancellationToken);
                    if (!accepted)
                    {
                        await Task.WhenAll(pending);
                        return await appended;
                    }

                    pending.Add(appended);
                }

                pending.Add(DeleteSegmentAsync(name, cancellationToken));
            }

            foreach (var done in await Task.WhenAll(pending))
            {
                // A deletion that finds its source gone is a repeat; anything else failed (the container stopped: retry).
                if (!done.IsSuccess && done.Status != OutcomeStatus.NoSuchSegment)
                {
                    return done;
                }
            }

            return new OperationOutcome(OutcomeStatus.Success, GetInfo(target)?.Length ?? 0);
        }
        finally
        {
            foreach (var buffer in buffers)
            {
                if (buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
    }

    /// <summary>
    /// Hands an append to the log and returns once it is accepted (or refused), with the task of its outcome: the next
    /// operation the caller hands in lands after it in the log. Waits for capacity like <see cref="AppendAsync"/>.
    /// </summary>
    private async Task<(bool Accepted, Task<OperationOutcome> Outcome)> AcceptAppendAsync(string target, Guid writer, int events, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        var sequence = new ReadOnlySequence<byte>(data);
        while (true)
        {
            switch (TryAppend(target, writer, 0, events, null, sequence, completion, 0, out var outcome))
            {
                case AppendAcceptance.Completed:
                    // Refused, or a duplicate answered at once (an earlier attempt's block is durable): only the latter deletes.
                    return (outcome.IsSuccess, Task.FromResult(outcome));
                case AppendAcceptance.Accepted:
                    return (true, completion.Task.WaitAsync(cancellationToken));
                default:
                    await WaitForCapacityAsync(cancellationToken);
                    break;
            }
        }
    }

    /// <summary>Transaction segments in the container now.</summary>
    public int TransactionSegmentCount => _metadata.TransactionSegmentCount;

    private Task? _expiring;

    /// <summary>
    /// Deletes transaction segments older than <see cref="ContainerOptions.TransactionSegmentExpiry"/> at
    /// <paramref name="now"/>: left over by a write that came after its transaction's commit or abort, since no
    /// transaction lives that long. Returns how many went.
    /// </summary>
    internal async Task<int> ExpireTransactionSegmentsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var expired = _metadata.TransactionSegmentsCreatedBefore((now - _transactionExpiry).ToUnixTimeMilliseconds());
        foreach (var name in expired)
        {
            await DeleteSegmentAsync(name, cancellationToken);
        }

        if (expired.Count > 0)
        {
            _logger.LogWarning("Container {Container} deleted {Count} transaction segment(s) older than {Expiry} (left over by writes after their transaction ended).",
                Id, expired.Count, _transactionExpiry);
        }

        return expired.Count;
    }

    private async Task ExpireTransactionSegmentsLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Clamp(_transactionExpiry.Ticks / 10, TimeSpan.TicksPerSecond, TimeSpan.TicksPerHour)));
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                try
                {
                    await ExpireTransactionSegmentsAsync(DateTimeOffset.UtcNow, stopping);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _logger.LogWarning("Container {Container}: deleting left-over transaction segments failed ({Error}); retrying later.", Id, e.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
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
