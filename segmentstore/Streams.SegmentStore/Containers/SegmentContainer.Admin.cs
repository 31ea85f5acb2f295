using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Containers;

public sealed partial class SegmentContainer
{
    public Task<OperationOutcome> CreateSegmentAsync(string name, CancellationToken cancellationToken = default)
    {
        var completion = new OperationCompletion();
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
            {
                return Task.FromResult(unavailable);
            }

            if (_byName.ContainsKey(name))
            {
                return Task.FromResult(OperationOutcome.Fail(OutcomeStatus.SegmentExists, $"Segment {name} already exists."));
            }

            var segment = new SegmentMetadata(_nextSegmentId++, name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            var frame = FrameFor(18 + (name.Length * 3));
            frame.Builder.AddCreate(segment.Id, segment.CreatedAtUnixMs, name);
            frame.Operations.Add(new PendingOperation { Kind = PendingKind.Create, Segment = segment, Callback = completion });
            _byName.Add(name, segment);
            _byId.Add(segment.Id, segment);
        }

        _writeSignal.Release();
        return completion.Task.WaitAsync(cancellationToken);
    }

    public Task<OperationOutcome> SealSegmentAsync(string name, CancellationToken cancellationToken = default) =>
        Mutate(name, PendingKind.Seal, 0, cancellationToken);

    public Task<OperationOutcome> TruncateSegmentAsync(string name, long offset, CancellationToken cancellationToken = default) =>
        Mutate(name, PendingKind.Truncate, offset, cancellationToken);

    public Task<OperationOutcome> DeleteSegmentAsync(string name, CancellationToken cancellationToken = default) =>
        Mutate(name, PendingKind.Delete, 0, cancellationToken);

    /// <summary>The segment's durable state, or null if it does not exist.</summary>
    public SegmentInfo? GetInfo(string name)
    {
        var segment = FindDurable(name);
        return segment is null
            ? null
            : new SegmentInfo
            {
                Segment = segment.Name,
                Length = segment.Length,
                StartOffset = segment.StartOffset,
                Sealed = segment.IsSealed,
                CreatedAtUnixMs = segment.CreatedAtUnixMs,
            };
    }

    /// <summary>Names of the segments whose creation is durable.</summary>
    public IReadOnlyList<string> ListSegments()
    {
        lock (_sync)
        {
            return [.. _byName.Values.Where(s => s.IsDurable).Select(s => s.Name)];
        }
    }

    private SegmentMetadata? FindDurable(string name)
    {
        lock (_sync)
        {
            return _byName.TryGetValue(name, out var segment) && segment.IsDurable ? segment : null;
        }
    }

    private Task<OperationOutcome> Mutate(string name, PendingKind kind, long offset, CancellationToken cancellationToken)
    {
        var completion = new OperationCompletion();
        lock (_sync)
        {
            if (Unavailable() is { } unavailable)
            {
                return Task.FromResult(unavailable);
            }

            if (!_byName.TryGetValue(name, out var segment))
            {
                return Task.FromResult(OperationOutcome.Fail(OutcomeStatus.NoSuchSegment, $"Segment {name} does not exist."));
            }

            if (kind == PendingKind.Seal && segment.PendingSealed)
            {
                // Sealing is idempotent: answer once the earlier seal is durable.
                return TryAttachBarrier(new PendingOperation { Kind = PendingKind.DuplicateBarrier, Segment = segment, Callback = completion })
                    ? completion.Task.WaitAsync(cancellationToken)
                    : Task.FromResult(new OperationOutcome(OutcomeStatus.Success, segment.Length));
            }

            if (kind == PendingKind.Truncate && (offset < segment.PendingStartOffset || offset > segment.PendingLength))
            {
                return Task.FromResult(OperationOutcome.Fail(OutcomeStatus.InvalidArgument,
                    $"Cannot truncate {name} at {offset}: valid offsets are {segment.PendingStartOffset} to {segment.PendingLength}.",
                    segment.PendingLength));
            }

            // Validation is done: from here the operation goes into a frame.
            var frame = FrameFor(16);
            switch (kind)
            {
                case PendingKind.Seal:
                    frame.Builder.AddSegmentValue(OperationType.Seal, segment.Id, segment.PendingLength);
                    segment.PendingSealed = true;
                    break;
                case PendingKind.Truncate:
                    frame.Builder.AddSegmentValue(OperationType.Truncate, segment.Id, offset);
                    segment.PendingStartOffset = offset;
                    break;
                default:
                    frame.Builder.AddDelete(segment.Id);
                    segment.PendingDeleted = true;
                    _unflushedBytes -= segment.PendingLength - segment.StorageLength;
                    _byName.Remove(name);
                    break;
            }

            frame.Operations.Add(new PendingOperation { Kind = kind, Segment = segment, Offset = offset, Callback = completion });
        }

        _writeSignal.Release();
        return completion.Task.WaitAsync(cancellationToken);
    }
}
