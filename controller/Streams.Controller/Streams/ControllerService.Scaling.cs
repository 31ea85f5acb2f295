using Grpc.Core;
using Microsoft.Extensions.Logging;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Streams;

/// <summary>
/// Scaling: the epoch transition workflow and the successor queries.
/// <para>
/// A scale is recorded in the stream record (<see cref="StreamRecord.Transition"/>) before anything else happens, then
/// driven through its steps, each ending with a compare-and-set of the record: "" (recorded) → "created" (successors
/// created on the segment stores, seeded with their share of the predecessors' load) → "linked" (successor records with
/// their predecessors stored in the transition, not yet active) → "sealed" (predecessors sealed) → "inherited" (writer
/// records copied into the successors) → advanced (the new epoch is the active one, the transition is gone). Every
/// step's segment operations are idempotent, so whoever finds the transition (the same request again, a seal, recovery
/// on a new leader, or the stale-step pass) runs the recorded step again and moves on; a lost compare-and-set re-reads
/// the record and continues from whatever step it shows. Successor numbers come from
/// <see cref="StreamRecord.NextSegmentNumber"/>, which only the final step advances, so a re-run never makes other
/// segments.
/// </para>
/// </summary>
public sealed partial class ControllerService
{
    /// <summary>The reason of a scale asked for through the ScaleStream rpc; such a scale must seal one adjacent run.</summary>
    public const string ManualReason = "manual";

    /// <summary>Scale history kept in the stream record.</summary>
    internal const int HistoryLimit = 32;

    /// <summary>Bounds one drive of a transition: six steps, plus re-reads after compare-and-sets lost to other controllers.</summary>
    private const int MaxTransitionRounds = 32;

    /// <summary>
    /// Seals segments of the current epoch and replaces them with successors covering exactly their key ranges, as a
    /// durable, resumable epoch transition. Completes when the new epoch is active. A <see cref="ManualReason"/> scale
    /// must seal one run of adjacent segments; the scaling policy may coalesce several runs into one transition. The
    /// same request while it is in progress waits for it; another one is refused with FAILED_PRECONDITION.
    /// </summary>
    public async Task<StreamInfo> ScaleStreamAsync(string scope, string stream, IReadOnlyList<long> sealSegmentIds, IReadOnlyList<KeyRangeRecord> newRanges, string reason, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("ScaleStream", scope, stream);
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        using var _ = await LockAsync(scope, stream, cancellationToken);
        var (record, version) = await GetRequiredAsync(scope, stream, cancellationToken);
        return ToInfo((await ScaleLockedAsync(record, version, sealSegmentIds, newRanges, reason, cancellationToken)).Record);
    }

    /// <summary>
    /// The segments that replaced <paramref name="segment"/>, each with all its predecessors: empty while the segment
    /// is in the current epoch (also during a transition that seals it), and for a segment sealed with its stream.
    /// </summary>
    public async Task<SuccessorsReply> GetSuccessorsAsync(string segment, CancellationToken cancellationToken)
    {
        var (record, found) = await FindSegmentAsync(segment, cancellationToken);
        var reply = new SuccessorsReply { State = StateOf(record) };
        if (found.SealedEpoch is { } epoch)
        {
            foreach (var successor in record.AllSegments.Where(s => s.Epoch == epoch && s.KeyStart < found.KeyEnd && found.KeyStart < s.KeyEnd).OrderBy(s => s.KeyStart))
            {
                var entry = new SuccessorSegment { Segment = ToRange(record, successor) };
                entry.PredecessorIds.AddRange(successor.Predecessors ?? []);
                reply.Successors.Add(entry);
            }
        }

        return reply;
    }

    /// <summary>Every segment the stream has had, by creation epoch and key, with where it came from and when it was replaced.</summary>
    public async Task<SegmentList> ListSegmentsAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var (record, _) = await GetRequiredAsync(scope, stream, cancellationToken);
        var reply = new SegmentList { Epoch = record.Epoch, State = StateOf(record) };
        foreach (var segment in record.AllSegments.OrderBy(s => s.Epoch).ThenBy(s => s.KeyStart))
        {
            var descriptor = new SegmentDescriptor { Segment = ToRange(record, segment), CreatedEpoch = segment.Epoch };
            if (segment.SealedEpoch is { } sealedEpoch)
            {
                descriptor.SealedEpoch = sealedEpoch;
            }

            descriptor.PredecessorIds.AddRange(segment.Predecessors ?? []);
            reply.Segments.Add(descriptor);
        }

        return reply;
    }

    /// <summary>
    /// The bytes the segments of earlier epochs took (sealed: final): with the current epoch's tail, what the stream
    /// took in all, which a scale must not make shrink (size-based retention counts on it).
    /// </summary>
    public async Task<long> EarlierEpochsBytesAsync(StreamRecord record, CancellationToken cancellationToken)
    {
        var infos = await Task.WhenAll((record.EarlierSegments ?? []).Select(s => _segments.GetSegmentInfoAsync(NameOf(record, s), cancellationToken)));
        return infos.Sum(i => i.Length);
    }

    /// <summary>
    /// Drives every transition whose last step is older than <see cref="ControllerOptions.ScaleStepTimeout"/> (its
    /// driver crashed, or its segment store was away); for the leading controller, periodically. Returns how many it finished.
    /// </summary>
    public async Task<int> RedriveStaleTransitionsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var finished = 0;
        var limit = now.ToUnixTimeMilliseconds() - (long)_options.ScaleStepTimeout.TotalMilliseconds;
        foreach (var stale in (await ListAllStreamsAsync(cancellationToken)).Where(r => r.Transition is { } t && t.StepAtUnixMs <= limit))
        {
            try
            {
                using var _ = await LockAsync(stale.Scope, stale.Stream, cancellationToken);
                if (await _metadata.GetStreamAsync(stale.Scope, stale.Stream, cancellationToken) is { Record.Transition: { } t } found && t.StepAtUnixMs <= limit)
                {
                    _logger.LogWarning("Scale of {Scope}/{Stream} from epoch {Epoch} has been at step '{Step}' since {Since:u}; driving it again.",
                        stale.Scope, stale.Stream, t.FromEpoch, t.Step, DateTimeOffset.FromUnixTimeMilliseconds(t.StepAtUnixMs));
                    await DriveTransitionAsync(found.Record, found.Version, cancellationToken);
                    finished++;
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogWarning("Driving the scale of {Scope}/{Stream} failed ({Error}); retrying later.", stale.Scope, stale.Stream, e.Message);
            }
        }

        return finished;
    }

    /// <summary>Starts (or joins, if it is the same request) a transition and drives it to the new epoch; the caller holds the stream's lock.</summary>
    private async Task<(StreamRecord Record, long Version)> ScaleLockedAsync(StreamRecord record, long version, IReadOnlyList<long> sealSegmentIds, IReadOnlyList<KeyRangeRecord> newRanges, string reason, CancellationToken cancellationToken)
    {
        var name = $"{record.Scope}/{record.Stream}";
        if (record.Transition is { } running)
        {
            if (running.SealSegmentIds.Order().SequenceEqual(sealSegmentIds.Order()) && running.NewRanges.SequenceEqual(newRanges.OrderBy(r => r.Start)))
            {
                return await DriveTransitionAsync(record, version, cancellationToken);
            }

            throw InProgress(record, running);
        }

        switch (record.State)
        {
            case StreamRecordState.Creating:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {name} is still being created; retry."));
            case StreamRecordState.Sealing or StreamRecordState.Sealed:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {name} is sealed; a sealed stream does not scale."));
            case StreamRecordState.Deleting:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {name} is being deleted."));
        }

        var (min, max) = ScalingPolicies.Bounds(record.Policy, _options.MaxSegmentsPerStream);
        var ranges = ScaleRequestCheck.Check(record, sealSegmentIds, newRanges, reason == ManualReason, min, max);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var transition = new EpochTransitionRecord(record.Epoch, [.. sealSegmentIds.Order()], ranges, string.Empty, now, now, reason);
        record = record with { Transition = transition };
        version = await UpdateAsync(record, version, cancellationToken);
        _logger.LogInformation("Scaling {Stream} from epoch {Epoch} ({Reason}): sealing {Sealed} into {Count} segment(s).", name, record.Epoch, reason, string.Join(", ", transition.SealSegmentIds), ranges.Count);
        return await DriveTransitionAsync(record, version, cancellationToken);
    }

    /// <summary>Runs the recorded transition's remaining steps; returns the record with the new epoch active.</summary>
    private async Task<(StreamRecord Record, long Version)> DriveTransitionAsync(StreamRecord record, long version, CancellationToken cancellationToken)
    {
        for (var round = 0; record.Transition is { } transition; round++)
        {
            if (round == MaxTransitionRounds)
            {
                throw new RpcException(new Status(StatusCode.Aborted, $"Stream {record.Scope}/{record.Stream} kept changing while its scale ran; retry."));
            }

            var next = await RunStepAsync(record, transition, cancellationToken);
            if (await _metadata.UpdateStreamAsync(next, version, cancellationToken) is { } written)
            {
                (record, version) = (next, written);
                Remember(record);
                continue;
            }

            // Another controller moved the record: carry on from whatever it shows.
            (record, version) = await _metadata.GetStreamAsync(record.Scope, record.Stream, cancellationToken)
                ?? throw new RpcException(new Status(StatusCode.NotFound, $"Stream {record.Scope}/{record.Stream} was deleted during its scale."));
        }

        return (record, version);
    }

    /// <summary>Performs the step after <paramref name="transition"/>'s and returns the record that records it.</summary>
    private async Task<StreamRecord> RunStepAsync(StreamRecord record, EpochTransitionRecord transition, CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var successors = transition.Successors ?? PlannedSuccessors(record, transition);
        var predecessors = record.ActiveSegments.Where(s => transition.SealSegmentIds.Contains(SegmentName.ComposeId(s.Epoch, s.Number))).ToList();
        switch (transition.Step)
        {
            case "":
                await Task.WhenAll(successors.Select(s => _segments.CreateSegmentAsync(NameOf(record, s), cancellationToken, SeedOf(record, s, predecessors))));
                return record with { Transition = transition with { Step = "created", StepAtUnixMs = now } };
            case "created":
                return record with { Transition = transition with { Step = "linked", StepAtUnixMs = now, Successors = successors } };
            case "linked":
                await WaitForCommitsAsync(record, transition.SealSegmentIds.ToHashSet(), cancellationToken);
                await Task.WhenAll(predecessors.Select(p => _segments.SealSegmentAsync(NameOf(record, p), cancellationToken)));
                return record with { Transition = transition with { Step = "sealed", StepAtUnixMs = now } };
            case "sealed":
                await InheritWriterRecordsAsync(record, predecessors, successors, cancellationToken);
                return record with { Transition = transition with { Step = "inherited", StepAtUnixMs = now } };
            case "inherited":
                return Advance(record, transition, successors, predecessors, now);
            default:
                throw new RpcException(new Status(StatusCode.Internal, $"Stream {record.Scope}/{record.Stream} records a scale at an unknown step '{transition.Step}'; this controller is older than the one that wrote it."));
        }
    }

    /// <summary>The new epoch: successors active, predecessors moved to the earlier segments, history appended.</summary>
    private static StreamRecord Advance(StreamRecord record, EpochTransitionRecord transition, IReadOnlyList<SegmentRecord> successors, List<SegmentRecord> predecessors, long now)
    {
        var epoch = transition.FromEpoch + 1;
        var sealedIds = transition.SealSegmentIds.ToHashSet();
        var active = record.ActiveSegments.Where(s => !sealedIds.Contains(SegmentName.ComposeId(s.Epoch, s.Number))).Concat(successors).OrderBy(s => s.KeyStart).ToList();
        var earlier = (record.EarlierSegments ?? []).Concat(predecessors.Select(p => p with { SealedEpoch = epoch })).ToList();
        var history = (record.History ?? []).Append(new ScaleHistoryRecord(epoch, now, transition.SealSegmentIds, [.. successors.Select(s => SegmentName.ComposeId(s.Epoch, s.Number))], transition.Reason)).TakeLast(HistoryLimit).ToList();
        var policy = record.Policy.Kind == ScalingKind.Fixed ? record.Policy with { Target = active.Count } : record.Policy;
        return record with
        {
            Epoch = epoch,
            ActiveSegments = active,
            EarlierSegments = earlier,
            History = history,
            Transition = null,
            NextSegmentNumber = NextNumber(record) + successors.Count,
            Scaling = policy,
            FixedSegmentCount = policy.Kind == ScalingKind.Fixed ? active.Count : record.FixedSegmentCount,
        };
    }

    /// <summary>The successors a transition makes: new numbers in the next epoch, each with the predecessors it overlaps.</summary>
    private static IReadOnlyList<SegmentRecord> PlannedSuccessors(StreamRecord record, EpochTransitionRecord transition)
    {
        var first = NextNumber(record);
        var predecessors = record.ActiveSegments.Where(s => transition.SealSegmentIds.Contains(SegmentName.ComposeId(s.Epoch, s.Number))).ToList();
        return [.. transition.NewRanges.Select((range, i) => new SegmentRecord(first + i, transition.FromEpoch + 1, range.Start, range.End,
            [.. predecessors.Where(p => p.KeyStart < range.End && range.Start < p.KeyEnd).OrderBy(p => p.KeyStart).Select(p => SegmentName.ComposeId(p.Epoch, p.Number))]))];
    }

    /// <summary>The number the next new segment gets; records from before scaling kept none (0) and had numbered 0 to count - 1.</summary>
    private static int NextNumber(StreamRecord record) => record.NextSegmentNumber > 0 ? record.NextSegmentNumber : record.AllSegments.Count();

    /// <summary>A successor's share of its predecessors' latest rates (rate × overlap / width, summed), or null if none reported.</summary>
    private SegmentLoadSeed? SeedOf(StreamRecord record, SegmentRecord successor, List<SegmentRecord> predecessors)
    {
        if (_loads is null)
        {
            return null;
        }

        SegmentLoadSeed? seed = null;
        foreach (var predecessor in predecessors)
        {
            var overlap = Math.Min(predecessor.KeyEnd, successor.KeyEnd) - Math.Max(predecessor.KeyStart, successor.KeyStart);
            if (overlap <= 0 || _loads.Latest(NameOf(record, predecessor)) is not { } load)
            {
                continue;
            }

            seed ??= new SegmentLoadSeed();
            var share = overlap / (predecessor.KeyEnd - predecessor.KeyStart);
            AddShare(seed.EventRates, load.EventRates, share);
            AddShare(seed.ByteRates, load.ByteRates, share);
            seed.AgeMs = Math.Max(seed.AgeMs, load.AgeMs);
        }

        return seed;
    }

    private static void AddShare(Google.Protobuf.Collections.RepeatedField<double> into, IReadOnlyList<double> rates, double share)
    {
        for (var i = 0; i < rates.Count; i++)
        {
            if (i == into.Count)
            {
                into.Add(0);
            }

            into[i] += rates[i] * share;
        }
    }

    /// <summary>The "inherited" step: each successor gets its predecessors' writer records, by key range (<see cref="WriterInheritance"/>).</summary>
    private async Task InheritWriterRecordsAsync(StreamRecord record, List<SegmentRecord> predecessors, IReadOnlyList<SegmentRecord> successors, CancellationToken cancellationToken)
    {
        WriterRecords[] writers;
        try
        {
            writers = await Task.WhenAll(predecessors.Select(p => _segments.GetWriterRecordsAsync(NameOf(record, p), cancellationToken)));
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            // A segment store from before writer records: there is nothing it could take either.
            _logger.LogWarning("Scale of {Scope}/{Stream}: the segment store keeps no writer records ({Error}); successors start without them.", record.Scope, record.Stream, e.Status.Detail);
            return;
        }

        await Task.WhenAll(successors.Select(async successor =>
        {
            var inherited = WriterInheritance.Compute(
                new KeyRangeRecord(successor.KeyStart, successor.KeyEnd),
                [.. predecessors.Select((p, i) => new WriterInheritance.Predecessor(new KeyRangeRecord(p.KeyStart, p.KeyEnd), writers[i].Writers))]);
            if (inherited.Count > 0)
            {
                await _segments.InheritWriterRecordsAsync(NameOf(record, successor), inherited, cancellationToken);
            }
        }));
    }

    /// <summary>
    /// Waits until no transaction is committing into <paramref name="sealing"/> (null: any segment of the stream): a decided
    /// commit merges into the segments a scale or a seal is about to seal. New commits into them cannot be decided
    /// meanwhile: the stream record changed (a transition naming them, or the Sealing state) after they checked it. Throws
    /// UNAVAILABLE after <see cref="ControllerOptions.CommitWait"/>.
    /// </summary>
    private async Task WaitForCommitsAsync(StreamRecord record, IReadOnlySet<long>? sealing, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + _options.CommitWait;
        for (var delay = 20; ; delay = Math.Min(delay * 2, 500))
        {
            var committing = await _metadata.CommittingTransactionsAsync(record.Scope, record.Stream, sealing, cancellationToken);
            if (committing == 0)
            {
                return;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new RpcException(new Status(StatusCode.Unavailable,
                    $"Stream {record.Scope}/{record.Stream} has {committing} transaction(s) committing for more than {_options.CommitWait.TotalSeconds:0} s; it is sealed once they have merged (retried later)."));
            }

            await Task.Delay(delay, cancellationToken);
        }
    }

    private async Task<(StreamRecord Record, SegmentRecord Segment)> FindSegmentAsync(string segment, CancellationToken cancellationToken)
    {
        if (!SegmentName.TryParse(segment, out var name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{segment}' is not a segment name (expected scope/stream/number.#epoch.N)."));
        }

        var (record, _) = await GetRequiredAsync(name.Value.Scope, name.Value.Stream, cancellationToken);
        var found = record.FindSegment(name.Value.Number, name.Value.Epoch)
            ?? throw new RpcException(new Status(StatusCode.NotFound, MissingSegment(record, name.Value)));
        return (record, found);
    }

    private static RpcException InProgress(StreamRecord record, EpochTransitionRecord running)
    {
        var age = TimeSpan.FromMilliseconds(Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - running.StartedAtUnixMs));
        return new RpcException(new Status(StatusCode.FailedPrecondition,
            $"Stream {record.Scope}/{record.Stream}: another scale is in progress (from epoch {running.FromEpoch}, at step '{StepName(running.Step)}', started {age.TotalSeconds:0} s ago); retry once it has finished."));
    }

    private static string StepName(string step) => step.Length == 0 ? "recorded" : step;

    private static ScaleTransition ToContract(EpochTransitionRecord transition)
    {
        var contract = new ScaleTransition
        {
            FromEpoch = transition.FromEpoch,
            Step = transition.Step,
            StartedAtUnixMs = transition.StartedAtUnixMs,
            StepAtUnixMs = transition.StepAtUnixMs,
            Reason = transition.Reason,
        };
        contract.SealSegmentIds.AddRange(transition.SealSegmentIds);
        contract.NewRanges.AddRange(transition.NewRanges.Select(r => new KeyRange { KeyStart = r.Start, KeyEnd = r.End }));
        return contract;
    }

    private static ScaleEvent ToContract(ScaleHistoryRecord scale)
    {
        var contract = new ScaleEvent { Epoch = scale.Epoch, TimeUnixMs = scale.TimeUnixMs, Reason = scale.Reason };
        contract.SealedSegmentIds.AddRange(scale.Sealed);
        contract.CreatedSegmentIds.AddRange(scale.Created);
        return contract;
    }
}
