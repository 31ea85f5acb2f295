using System.Buffers;
using Streams.Common.Wire;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

/// <summary>What happened to an append handed to <see cref="SegmentContainer.TryAppend"/>.</summary>
public enum AppendAcceptance
{
    /// <summary>Copied into a frame; the callback answers once it is durable (or failed).</summary>
    Accepted,

    /// <summary>Answered at once, in the out parameter: rejected, or a duplicate with nothing pending.</summary>
    Completed,

    /// <summary>The pipeline is full: wait with <see cref="SegmentContainer.WaitForCapacityAsync"/> and try again.</summary>
    NoCapacity,
}

public sealed partial class SegmentContainer
{
    /// <summary>
    /// Accepts a block of framed events into the current frame. The data is copied exactly once, before this
    /// method returns, so the caller may release its receive buffer right after. Thread-safe.
    /// </summary>
    public AppendAcceptance TryAppend(
        string segmentName,
        Guid writer,
        long lastEventNumber,
        int eventCount,
        long? expectedOffset,
        in ReadOnlySequence<byte> data,
        IOperationCallback callback,
        long token,
        out OperationOutcome outcome)
    {
        if (ValidateBlock(lastEventNumber, eventCount, data) is { } invalid)
        {
            outcome = OperationOutcome.Fail(OutcomeStatus.InvalidArgument, invalid);
            return AppendAcceptance.Completed;
        }

        var bodyLength = DataFrame.AppendHeaderSize + (int)data.Length;
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
            {
                outcome = unavailable;
                return AppendAcceptance.Completed;
            }

            if (!_byName.TryGetValue(segmentName, out var segment))
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {segmentName} does not exist.");
                return AppendAcceptance.Completed;
            }

            if (lastEventNumber <= segment.AcceptedEventNumber(writer))
            {
                // Re-sent after a reconnect: acknowledge once the original is durable, never append it twice. The ack
                // carries the writer's durable number, not the block's: acknowledgements are cumulative, never backwards.
                var duplicate = new PendingOperation
                {
                    Kind = PendingKind.DuplicateBarrier, Segment = segment, Writer = writer, EventNumber = lastEventNumber,
                    Callback = callback, Token = token,
                };
                outcome = new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(writer));
                return TryAttachBarrier(duplicate) ? AppendAcceptance.Accepted : AppendAcceptance.Completed;
            }

            if (segment.PendingSealed)
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.SegmentSealed, $"Segment {segmentName} is sealed.", segment.PendingLength);
                return AppendAcceptance.Completed;
            }

            if (expectedOffset is { } expected && expected != segment.PendingLength)
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.ConditionFailed,
                    $"Segment {segmentName} has length {segment.PendingLength}, not the expected {expected}.", segment.PendingLength);
                return AppendAcceptance.Completed;
            }

            if (CheckBudget(out var waitForTier2) is { } refused)
            {
                outcome = refused;
                return AppendAcceptance.Completed;
            }

            if (waitForTier2)
            {
                outcome = default;
                return AppendAcceptance.NoCapacity;
            }

            var fits = _current is { } current && current.Builder.HasRoomFor(bodyLength);
            if (!fits && _pending.Count >= _options.MaxPendingFrames)
            {
                outcome = default;
                return AppendAcceptance.NoCapacity;
            }

            var frame = FrameFor(bodyLength);
            var offset = segment.PendingLength;
            var frameOffset = frame.Builder.AddAppend(segment.Id, offset, writer, lastEventNumber, data);
            frame.Operations.Add(new PendingOperation
            {
                Kind = PendingKind.Append, Segment = segment, Offset = offset, Length = (int)data.Length, FrameOffset = frameOffset,
                Writer = writer, EventNumber = lastEventNumber, EventCount = eventCount, Callback = callback, Token = token,
            });
            frame.HasAppends = true;
            segment.PendingLength = offset + data.Length;
            segment.Accept(writer, lastEventNumber);
            _unflushedBytes += data.Length;
        }

        _writeSignal.Release();
        outcome = default;
        return AppendAcceptance.Accepted;
    }

    /// <summary>
    /// Answers, through <paramref name="callback"/>, with the writer's last durable event number on the segment,
    /// once everything accepted before this call is durable.
    /// </summary>
    public void SetupAppend(string segmentName, Guid writer, IOperationCallback callback, long token)
    {
        OperationOutcome outcome;
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
            {
                outcome = unavailable;
            }
            else if (!_byName.TryGetValue(segmentName, out var segment))
            {
                outcome = OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {segmentName} does not exist.");
            }
            else
            {
                var barrier = new PendingOperation { Kind = PendingKind.SetupBarrier, Segment = segment, Writer = writer, Callback = callback, Token = token };
                if (TryAttachBarrier(barrier))
                {
                    return;
                }

                outcome = new OperationOutcome(OutcomeStatus.Success, segment.Length, segment.DurableEventNumber(writer));
            }
        }

        callback.OnCompleted(token, outcome);
    }

    /// <summary>Appends and waits for the outcome, applying back-pressure by waiting for capacity.</summary>
    public async Task<OperationOutcome> AppendAsync(
        string segmentName, Guid writer, long lastEventNumber, int eventCount, long? expectedOffset, ReadOnlyMemory<byte> data,
        CancellationToken cancellationToken = default)
    {
        var completion = new OperationCompletion();
        var sequence = new ReadOnlySequence<byte>(data);
        while (true)
        {
            var acceptance = TryAppend(segmentName, writer, lastEventNumber, eventCount, expectedOffset, sequence, completion, 0, out var outcome);
            switch (acceptance)
            {
                case AppendAcceptance.Completed:
                    return outcome;
                case AppendAcceptance.Accepted:
                    return await completion.Task.WaitAsync(cancellationToken);
                default:
                    await WaitForCapacityAsync(cancellationToken);
                    break;
            }
        }
    }

    private string? ValidateBlock(long lastEventNumber, int eventCount, in ReadOnlySequence<byte> data)
    {
        if (data.IsEmpty || eventCount <= 0)
        {
            return "An append block must hold at least one event.";
        }

        if (lastEventNumber < 0)
        {
            return $"Event numbers start at 0 (the block's last event number is {lastEventNumber}).";
        }

        if (data.Length > _log.MaxRecordSize - DataFrame.HeaderSize - DataFrame.AppendOverhead - DataFrame.TrailerSize)
        {
            return $"An append block of {data.Length} bytes is too large.";
        }

        return EventFraming.Validate(data, eventCount) is { } framing ? $"Malformed append block: {framing}." : null;
    }
}
