using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Grpc.Core;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Scaling;

namespace Streams.Controller.Streams;

/// <summary>
/// The controller's stream management. Every multi-step change (create, seal, delete) first records its intent in
/// the stream's record (Creating, Sealing, Deleting), then performs idempotent segment operations, then records the
/// result with a compare-and-set. A controller that crashes midway leaves the intent behind, and
/// <see cref="RecoverAsync"/> (run at start) finishes it, so a stream is never left half-created or half-sealed.
/// A scale is such a change too, with more steps (ControllerService.Scaling.cs). Requests fail with gRPC statuses that
/// say what to change.
/// </summary>
public sealed partial class ControllerService
{
    private readonly StreamMetadataStore _metadata;
    private readonly ISegmentStoreAdmin _segments;
    private readonly ISegmentLocator _locator;
    private readonly ControllerOptions _options;
    private readonly ILogger _logger;
    private readonly ISegmentLoads? _loads;

    /// <summary>A truncation offset meaning "the segment's end".</summary>
    private const long WholeSegment = -1;
    private readonly StreamLocks _streamLocks = new();
    private readonly ConcurrentDictionary<(string Scope, string Stream), StreamRecord> _known = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// A controller over <paramref name="metadata"/> and the segment stores; <paramref name="loads"/> (optional) is
    /// what they last reported of their segments' load, which seeds successors and names hot keys.
    /// </summary>
    public ControllerService(StreamMetadataStore metadata, ISegmentStoreAdmin segments, ISegmentLocator locator, ControllerOptions options, ILogger<ControllerService> logger, ISegmentLoads? loads = null)
    {
        options.Validate();
        _metadata = metadata;
        _segments = new TracedSegmentStoreAdmin(segments);
        _locator = locator;
        _options = options;
        _logger = logger;
        _loads = loads;
    }

    /// <summary>The streams this controller has seen, for metrics and the scaling signal.</summary>
    public IEnumerable<StreamRecord> KnownStreams => _known.Values;

    /// <summary>
    /// Completes when this controller next sees a stream's epoch, state or segment count change, or a stream appear or
    /// go (take it before reading, then wait on it). Changes other controllers make are seen when this one reads them.
    /// </summary>
    public Task StreamsChanged => Volatile.Read(ref _changed).Task;

    /// <summary>The record this controller last saw of a stream, or null.</summary>
    public StreamRecord? Known(string scope, string stream) => _known.TryGetValue((scope, stream), out var record) ? record : null;

    // ---- Scopes ---------------------------------------------------------------------------------------

    public async Task<bool> CreateScopeAsync(string scope, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        return await _metadata.CreateScopeAsync(scope, cancellationToken);
    }

    public async Task<bool> DeleteScopeAsync(string scope, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        var streams = await _metadata.ListStreamsAsync(scope, cancellationToken);
        if (streams.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Scope {scope} still has {streams.Count} stream(s); seal and delete them first."));
        }

        return await _metadata.DeleteScopeAsync(scope, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> ListScopesAsync(CancellationToken cancellationToken) =>
        await _metadata.ListScopesAsync(cancellationToken);

    // ---- Streams --------------------------------------------------------------------------------------

    public async Task<(bool Created, StreamInfo Info)> CreateStreamAsync(string scope, string stream, StreamConfiguration? config, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("CreateStream", scope, stream);
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        var policy = ScalingPolicies.FromContract(config?.Scaling, _options.MaxSegmentsPerStream);
        var segmentCount = ScalingPolicies.InitialSegments(policy);
        var (retentionTime, retentionSize, consumption) = RetentionOf(config);
        using var _ = await LockAsync(scope, stream, cancellationToken);
        if (!await _metadata.ScopeExistsAsync(scope, cancellationToken))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Scope {scope} does not exist; create it first."));
        }

        if (await _metadata.GetStreamAsync(scope, stream, cancellationToken) is { } existing)
        {
            var finished = existing.Record.State == StreamRecordState.Creating
                ? (await FinishCreateAsync(existing.Record, existing.Version, cancellationToken)).Record
                : existing.Record;
            return (false, ToInfo(finished));
        }

        var record = new StreamRecord(scope, stream, segmentCount, StreamRecordState.Creating, 0, EvenSegments(segmentCount), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), retentionTime, retentionSize)
        {
            Scaling = policy,
            NextSegmentNumber = segmentCount,
            Consumption = consumption,
        };
        if (!await _metadata.CreateStreamAsync(record, cancellationToken))
        {
            var raced = await _metadata.GetStreamAsync(scope, stream, cancellationToken);
            return (false, ToInfo(raced?.Record ?? record));
        }

        var (created, _) = await FinishCreateAsync(record, 0, cancellationToken);
        _logger.LogInformation("Created stream {Scope}/{Stream} with {Segments} segments.", scope, stream, segmentCount);
        return (true, ToInfo(created));
    }

    /// <summary>
    /// Changes a stream's configuration: its retention policy (unset: keep everything from now on) and its scaling
    /// policy (unset: keep it). A rate policy is recorded for the autoscaler; a fixed policy with another count than the
    /// stream has now rescales it to that many equal segments, through one epoch transition.
    /// </summary>
    public async Task<StreamInfo> UpdateStreamAsync(string scope, string stream, StreamConfiguration? config, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("UpdateStream", scope, stream);
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        var (retentionTime, retentionSize, consumption) = RetentionOf(config);
        using var _ = await LockAsync(scope, stream, cancellationToken);
        var (record, version) = await GetRequiredAsync(scope, stream, cancellationToken);
        if (record.State is StreamRecordState.Deleting or StreamRecordState.Creating)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {scope}/{stream} is being {(record.State == StreamRecordState.Deleting ? "deleted" : "created")}; retry later."));
        }

        var policy = config?.Scaling is { KindCase: not ScalingPolicy.KindOneofCase.None } scaling
            ? ScalingPolicies.FromContract(scaling, _options.MaxSegmentsPerStream)
            : record.Policy;
        var rescale = policy.Kind == ScalingKind.Fixed && policy.Target != record.ActiveSegments.Count;
        if (rescale && !record.IsOpen)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {scope}/{stream} is sealed; a sealed stream does not scale (its fixed count stays {record.ActiveSegments.Count})."));
        }

        var updated = record with
        {
            RetentionTimeMs = retentionTime,
            RetentionSizeBytes = retentionSize,
            Consumption = consumption,
            Scaling = policy,
            FixedSegmentCount = policy.Kind == ScalingKind.Fixed ? policy.Target : record.FixedSegmentCount,
        };
        if (rescale && record.Transition is { } running)
        {
            throw InProgress(record, running);
        }

        if (updated == record)
        {
            return ToInfo(record);
        }

        version = await UpdateAsync(updated, version, cancellationToken);
        if (rescale)
        {
            var all = updated.ActiveSegments.Select(s => SegmentName.ComposeId(s.Epoch, s.Number)).ToList();
            var ranges = EvenSegments(policy.Target).Select(s => new KeyRangeRecord(s.KeyStart, s.KeyEnd)).ToList();
            (updated, version) = await ScaleLockedAsync(updated, version, all, ranges, $"fixed: {record.ActiveSegments.Count} -> {policy.Target} segments", cancellationToken);
        }

        if (!updated.HasRetention)
        {
            await _metadata.DeleteRetentionAsync(scope, stream, cancellationToken);
        }

        _logger.LogInformation("Updated stream {Scope}/{Stream}: scaling {Scaling}, retention {Retention}.", scope, stream, policy,
            retentionTime is { } t ? $"{t} ms" : retentionSize is { } s ? $"{s} bytes" : consumption is not null ? $"following consumption ({consumption})" : "none");
        return ToInfo(updated);
    }

    /// <summary>A segment's length and state, from its segment store.</summary>
    public Task<Contracts.SegmentStore.SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        _segments.GetSegmentInfoAsync(segment, cancellationToken);

    public async Task<StreamInfo> DescribeStreamAsync(string scope, string stream, CancellationToken cancellationToken) =>
        ToInfo((await GetRequiredAsync(scope, stream, cancellationToken)).Record);

    public async Task<IReadOnlyList<string>> ListStreamsAsync(string scope, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        if (!await _metadata.ScopeExistsAsync(scope, cancellationToken))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Scope {scope} does not exist."));
        }

        return await _metadata.ListStreamsAsync(scope, cancellationToken);
    }

    public async Task<StreamInfo> SealStreamAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("SealStream", scope, stream);
        using var _ = await LockAsync(scope, stream, cancellationToken);
        var (record, version) = await GetRequiredAsync(scope, stream, cancellationToken);
        switch (record.State)
        {
            case StreamRecordState.Sealed:
                return ToInfo(record);
            case StreamRecordState.Deleting:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {scope}/{stream} is being deleted."));
            case StreamRecordState.Creating:
                (record, version) = await FinishCreateAsync(record, version, cancellationToken);
                break;
        }

        return ToInfo(await FinishSealAsync(record, version, cancellationToken));
    }

    public async Task<bool> DeleteStreamAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("DeleteStream", scope, stream);
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        using var _ = await LockAsync(scope, stream, cancellationToken);
        if (await _metadata.GetStreamAsync(scope, stream, cancellationToken) is not { } existing)
        {
            return false;
        }

        if (existing.Record.State is not (StreamRecordState.Sealed or StreamRecordState.Deleting))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {scope}/{stream} must be sealed before it is deleted."));
        }

        await FinishDeleteAsync(existing.Record, existing.Version, cancellationToken);
        return true;
    }

    /// <summary>
    /// The segments that take appends. A sealed stream (or one being sealed or deleted) has none: the list is empty and
    /// the state SEALED. <see cref="DescribeStreamAsync"/> still lists the segments that hold its data.
    /// </summary>
    public async Task<ActiveSegments> GetActiveSegmentsAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var (record, _) = await GetRequiredAsync(scope, stream, cancellationToken);
        var reply = new ActiveSegments { State = StateOf(record) };
        if (record.IsOpen)
        {
            reply.Segments.AddRange(record.ActiveSegments.Select(s => ToRange(record, s)));
        }

        return reply;
    }

    /// <summary>Where a segment is served; a transaction segment ("parent#txn.id") is served where its parent is.</summary>
    public async Task<SegmentEndpoint> GetSegmentEndpointAsync(string requested, CancellationToken cancellationToken)
    {
        var segment = TransactionName.TryParse(requested, out _, out _) ? TransactionName.ParentOf(requested) : requested;
        if (!SegmentName.TryParse(segment, out var name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{segment}' is not a segment name (expected scope/stream/number.#epoch.N)."));
        }

        var (record, _) = await GetRequiredAsync(name.Value.Scope, name.Value.Stream, cancellationToken);
        if (record.FindSegment(name.Value.Number, name.Value.Epoch) is null)
        {
            throw new RpcException(new Status(StatusCode.NotFound, MissingSegment(record, name.Value)));
        }

        // The segment store knows a segment by its exact name: "0.#epoch.0", never "00.#epoch.0".
        var canonical = name.Value.ToString();
        if (canonical != segment)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Stream {record.Scope}/{record.Stream} has no segment '{segment}'; numbers and epochs are written without leading zeros: '{canonical}'."));
        }

        return _locator.Locate(requested) ?? throw new RpcException(new Status(StatusCode.Unavailable, $"No segment store serves {segment} at the moment; retry."));
    }

    /// <summary>The stream's current tail: each active segment at its length.</summary>
    public async Task<StreamCut> GetStreamCutAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var (record, _) = await GetRequiredAsync(scope, stream, cancellationToken);
        var infos = await Task.WhenAll(record.ActiveSegments.Select(s => _segments.GetSegmentInfoAsync(NameOf(record, s), cancellationToken)));
        var cut = new StreamCut { Scope = scope, Stream = stream };
        for (var i = 0; i < infos.Length; i++)
        {
            cut.Positions[SegmentName.ComposeId(record.ActiveSegments[i].Epoch, record.ActiveSegments[i].Number)] = infos[i].Length;
        }

        return cut;
    }

    /// <summary>
    /// Truncates the stream at a cut: each named segment loses the bytes below its position (readers skip to it, Tier 2
    /// deletes them). Positions at or below a segment's start are no-ops, so retrying is safe.
    /// </summary>
    public async Task<StreamInfo> TruncateStreamAsync(StreamCut cut, CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.StartStream("TruncateStream", cut.Scope, cut.Stream);
        var (record, _) = await GetRequiredAsync(cut.Scope, cut.Stream, cancellationToken);
        if (record.State is StreamRecordState.Deleting)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {cut.Scope}/{cut.Stream} is being deleted."));
        }

        var segments = new List<(string Name, long Offset)>();
        foreach (var (id, offset) in cut.Positions)
        {
            var named = SegmentName.FromId(cut.Scope, cut.Stream, id);
            var segment = record.FindSegment(named.Number, named.Epoch)
                ?? throw new RpcException(new Status(StatusCode.InvalidArgument, $"Segment id {id} is not a segment of {cut.Scope}/{cut.Stream}."));
            if (offset < 0)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"The cut's offset {offset} for segment id {id} is negative."));
            }

            segments.Add((NameOf(record, segment), offset));
        }

        // A cut through every segment of the current epoch is after all of every earlier epoch (each earlier segment's
        // successors start where it ended): the earlier segments it does not name are dropped whole.
        if (record.ActiveSegments.All(s => cut.Positions.ContainsKey(SegmentName.ComposeId(s.Epoch, s.Number))))
        {
            segments.AddRange((record.EarlierSegments ?? [])
                .Where(s => !cut.Positions.ContainsKey(SegmentName.ComposeId(s.Epoch, s.Number)))
                .Select(s => (NameOf(record, s), WholeSegment)));
        }

        await Task.WhenAll(segments.Select(async s =>
        {
            var info = await _segments.GetSegmentInfoAsync(s.Name, cancellationToken);
            s.Offset = s.Offset == WholeSegment ? info.Length : s.Offset;
            if (s.Offset > info.Length)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"The cut puts {s.Name} at {s.Offset}, beyond its length {info.Length}."));
            }

            if (s.Offset > info.StartOffset)
            {
                await _segments.TruncateSegmentAsync(s.Name, s.Offset, cancellationToken);
            }
        }));
        _logger.LogInformation("Truncated stream {Scope}/{Stream} at {Cut}.", cut.Scope, cut.Stream, string.Join(", ", segments.Select(s => $"{s.Name}@{s.Offset}")));
        return ToInfo(record);
    }

    /// <summary>
    /// Every stream as the metadata store has it now (streams created or deleted through other controllers included);
    /// <see cref="KnownStreams"/> becomes the same list.
    /// </summary>
    public async Task<IReadOnlyList<StreamRecord>> ListAllStreamsAsync(CancellationToken cancellationToken)
    {
        var records = new List<StreamRecord>();
        foreach (var scope in await _metadata.ListScopesAsync(cancellationToken))
        {
            foreach (var stream in await _metadata.ListStreamsAsync(scope, cancellationToken))
            {
                if (await _metadata.GetStreamAsync(scope, stream, cancellationToken) is { } found)
                {
                    Remember(found.Record);
                    records.Add(found.Record);
                }
            }
        }

        var present = records.Select(r => (r.Scope, r.Stream)).ToHashSet();
        foreach (var gone in _known.Keys.Where(k => !present.Contains(k)))
        {
            Forget(gone);
        }

        return records;
    }

    /// <summary>Finishes every create, scale, seal and delete that an earlier controller left half done.</summary>
    public async Task RecoverAsync(CancellationToken cancellationToken)
    {
        using var activity = ControllerTracing.Source.StartActivity("RecoverStreams");
        foreach (var scope in await _metadata.ListScopesAsync(cancellationToken))
        {
            foreach (var stream in await _metadata.ListStreamsAsync(scope, cancellationToken))
            {
                using var _ = await LockAsync(scope, stream, cancellationToken);
                if (await _metadata.GetStreamAsync(scope, stream, cancellationToken) is not { } found)
                {
                    continue;
                }

                var (record, version) = found;
                Remember(record);
                switch (record.State)
                {
                    case StreamRecordState.Active when record.Transition is { } transition:
                        _logger.LogInformation("Resuming the scale of {Scope}/{Stream} from epoch {Epoch} at step '{Step}'.", scope, stream, transition.FromEpoch, StepName(transition.Step));
                        await DriveTransitionAsync(record, version, cancellationToken);
                        break;
                    case StreamRecordState.Creating:
                        _logger.LogInformation("Resuming creation of {Scope}/{Stream}.", scope, stream);
                        await FinishCreateAsync(record, version, cancellationToken);
                        break;
                    case StreamRecordState.Sealing:
                        _logger.LogInformation("Resuming sealing of {Scope}/{Stream}.", scope, stream);
                        await FinishSealAsync(record, version, cancellationToken);
                        break;
                    case StreamRecordState.Deleting:
                        _logger.LogInformation("Resuming deletion of {Scope}/{Stream}.", scope, stream);
                        await FinishDeleteAsync(record, version, cancellationToken);
                        break;
                }
            }
        }
    }

    // ---- Steps ----------------------------------------------------------------------------------------

    private async Task<(StreamRecord Record, long Version)> FinishCreateAsync(StreamRecord record, long version, CancellationToken cancellationToken)
    {
        await Task.WhenAll(record.ActiveSegments.Select(s => _segments.CreateSegmentAsync(NameOf(record, s), cancellationToken)));
        var active = record with { State = StreamRecordState.Active };
        return (active, await UpdateAsync(active, version, cancellationToken));
    }

    private async Task<StreamRecord> FinishSealAsync(StreamRecord record, long version, CancellationToken cancellationToken)
    {
        if (record.Transition is not null)
        {
            // A seal during a scale finishes the scale first: then every segment is in one epoch's set or sealed.
            (record, version) = await DriveTransitionAsync(record, version, cancellationToken);
        }

        if (record.State != StreamRecordState.Sealing)
        {
            record = record with { State = StreamRecordState.Sealing };
            version = await UpdateAsync(record, version, cancellationToken);
        }

        await WaitForCommitsAsync(record, null, cancellationToken);
        await Task.WhenAll(record.ActiveSegments.Select(s => _segments.SealSegmentAsync(NameOf(record, s), cancellationToken)));
        var sealedRecord = record with { State = StreamRecordState.Sealed };
        await UpdateAsync(sealedRecord, version, cancellationToken);
        _logger.LogInformation("Sealed stream {Scope}/{Stream}.", record.Scope, record.Stream);
        return sealedRecord;
    }

    private async Task FinishDeleteAsync(StreamRecord record, long version, CancellationToken cancellationToken)
    {
        if (record.State != StreamRecordState.Deleting)
        {
            record = record with { State = StreamRecordState.Deleting };
            version = await UpdateAsync(record, version, cancellationToken);
        }

        await Task.WhenAll(record.AllSegments.Select(s => _segments.DeleteSegmentAsync(NameOf(record, s), cancellationToken)));
        await _metadata.ForgetTransactionsAsync(record.Scope, record.Stream, s => _segments.DeleteSegmentAsync(s, cancellationToken), cancellationToken);
        await _metadata.DeleteRetentionAsync(record.Scope, record.Stream, cancellationToken);
        if (!await _metadata.DeleteStreamAsync(record.Scope, record.Stream, version, cancellationToken))
        {
            throw new RpcException(new Status(StatusCode.Aborted, $"Stream {record.Scope}/{record.Stream} changed during deletion; retry."));
        }

        Forget((record.Scope, record.Stream));
        _logger.LogInformation("Deleted stream {Scope}/{Stream}.", record.Scope, record.Stream);
    }

    private async Task<long> UpdateAsync(StreamRecord record, long version, CancellationToken cancellationToken)
    {
        var next = await _metadata.UpdateStreamAsync(record, version, cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.Aborted, $"Stream {record.Scope}/{record.Stream} was changed concurrently; retry."));
        Remember(record);
        return next;
    }

    private async Task<(StreamRecord Record, long Version)> GetRequiredAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        var found = await _metadata.GetStreamAsync(scope, stream, cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Stream {scope}/{stream} does not exist."));
        Remember(found.Record);
        return found;
    }

    /// <summary>Keeps the record as the stream's latest and tells <see cref="StreamsChanged"/> waiters when what they watch changed.</summary>
    private void Remember(StreamRecord record)
    {
        var key = (record.Scope, record.Stream);
        var previous = _known.TryGetValue(key, out var known) ? known : null;
        _known[key] = record;
        if (previous is null || previous.Epoch != record.Epoch || previous.State != record.State || previous.ActiveSegments.Count != record.ActiveSegments.Count)
        {
            SignalChange();
        }
    }

    private void Forget((string Scope, string Stream) stream)
    {
        if (_known.TryRemove(stream, out _))
        {
            SignalChange();
        }
    }

    private void SignalChange() =>
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private Task<IDisposable> LockAsync(string scope, string stream, CancellationToken cancellationToken) =>
        _streamLocks.LockAsync(scope + "/" + stream, cancellationToken);

    /// <summary>Splits the key space [0, 1) into <paramref name="count"/> equal ranges; the last ends exactly at 1.</summary>
    internal static IReadOnlyList<SegmentRecord> EvenSegments(int count) =>
        [.. Enumerable.Range(0, count).Select(i => new SegmentRecord(i, 0, (double)i / count, i == count - 1 ? 1.0 : (double)(i + 1) / count))];

    /// <summary>Why a parsed segment name is not one of the stream's: its epoch never came, or that epoch had no such number.</summary>
    private static string MissingSegment(StreamRecord record, SegmentName name)
    {
        const int Shown = 10;
        var prefix = $"Stream {record.Scope}/{record.Stream} has no segment {name.Number} of epoch {name.Epoch}";
        if (name.Epoch > record.Epoch)
        {
            return $"{prefix}: the stream is at epoch {record.Epoch}.";
        }

        var numbers = record.AllSegments.Where(s => s.Epoch == name.Epoch).Select(s => s.Number).Order().ToList();
        return numbers.Count == 0
            ? $"{prefix}: no segment of the stream was created in epoch {name.Epoch}."
            : $"{prefix}: epoch {name.Epoch} has segment{(numbers.Count == 1 ? string.Empty : "s")} {string.Join(", ", numbers.Take(Shown))}{(numbers.Count > Shown ? ", …" : string.Empty)}.";
    }

    private static string NameOf(StreamRecord record, SegmentRecord segment) =>
        new SegmentName(record.Scope, record.Stream, segment.Number, segment.Epoch).ToString();

    private static SegmentRange ToRange(StreamRecord record, SegmentRecord segment) => new()
    {
        SegmentId = SegmentName.ComposeId(segment.Epoch, segment.Number),
        Segment = NameOf(record, segment),
        KeyStart = segment.KeyStart,
        KeyEnd = segment.KeyEnd,
    };

    private static StreamState StateOf(StreamRecord record) => record.IsOpen ? StreamState.Active : StreamState.Sealed;

    private StreamInfo ToInfo(StreamRecord record)
    {
        var info = new StreamInfo
        {
            Scope = record.Scope,
            Stream = record.Stream,
            Config = new StreamConfiguration
            {
                Scaling = ScalingPolicies.ToContract(record.Policy),
                Retention = record.RetentionTimeMs is { } time ? new RetentionPolicy { TimeMs = time }
                    : record.RetentionSizeBytes is { } size ? new RetentionPolicy { SizeBytes = size }
                    : record.Consumption is { } c ? new RetentionPolicy
                    {
                        Consumption = new ConsumptionRetention { MinTimeMs = c.MinTimeMs, MinSizeBytes = c.MinSizeBytes, MaxTimeMs = c.MaxTimeMs, MaxSizeBytes = c.MaxSizeBytes },
                    }
                    : null,
            },
            State = StateOf(record),
            Epoch = record.Epoch,
            CreatedAtUnixMs = record.CreatedAtUnixMs,
        };
        info.ActiveSegments.AddRange(record.ActiveSegments.Select(s => ToRange(record, s)));
        info.Transition = record.Transition is { } transition ? ToContract(transition) : null;
        info.History.AddRange((record.History ?? []).Select(ToContract));
        if (_loads is not null)
        {
            info.HotKeys.AddRange(_loads.HotKeys(record.Scope, record.Stream));
        }

        return info;
    }

    private static void ValidateName(string name, string what)
    {
        if (NameValidator.Validate(name, what) is { } error)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error));
        }
    }
}
