using System.Diagnostics.Metrics;
using System.Text.Json;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Scaling;
using Streams.Controller.Streams;
using Streams.Coordination.Metadata;

namespace Streams.Controller.Transactions;

/// <summary>
/// Transactions (docs/transactions.md): begin, ping, commit, abort and status, on any controller; the leading controller
/// also sweeps (TransactionService.Sweep.cs).
/// <para>
/// A transaction is one record in the metadata store. Its commit is decided by one atomic metadata commit that sets the
/// record to COMMITTING, creates a marker under /transactions/{scope}/{stream}/committing and checks that the stream
/// record is still at the version whose epoch and segments were checked: a scale recorded meanwhile fails the decision,
/// and a scale recorded after it finds the marker and waits for it before it seals anything
/// (<see cref="CommittingCountAsync"/>). From COMMITTING on the commit cannot fail: the controller that decided it merges
/// it (<see cref="TransactionCommitter"/>); if that controller dies, the leading controller finds the stalled record
/// and merges it again (the merges are idempotent). Memory: a committing transaction costs its queue entry until its
/// merge round; records are read from the store, never all kept.
/// </para>
/// </summary>
public sealed partial class TransactionService
{
    private const string Root = "/transactions";

    private static readonly Meter Meter = new(ControllerMetrics.MeterName);
    private static readonly Counter<long> Begun = Meter.CreateCounter<long>("streams.transaction.begun", "{transaction}", "Transactions begun.");
    private static readonly Counter<long> Finished = Meter.CreateCounter<long>("streams.transaction.finished", "{transaction}", "Transactions committed or aborted, by outcome.");
    private static readonly Histogram<double> CommitLatency = Meter.CreateHistogram<double>("streams.transaction.commit_latency", "s",
        "From COMMITTING recorded to every merge done.");

    private readonly IMetadataStore _store;
    private readonly StreamMetadataStore _streams;
    private readonly ISegmentStoreAdmin _segments;
    private readonly TransactionOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _clock;
    private readonly TransactionCommitter _committer;

    public TransactionService(IMetadataStore store, ISegmentStoreAdmin segments, TransactionOptions options, ILogger<TransactionService> logger, TimeProvider? clock = null)
    {
        options.Validate();
        _store = store;
        _streams = new StreamMetadataStore(store);
        _segments = segments;
        _options = options;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
        _committer = new TransactionCommitter(this, options.CommitBatch, logger);
    }

    public TransactionOptions Options => _options;

    /// <summary>Transactions of a stream that are committing now (their markers), for the begin bound.</summary>
    public static async ValueTask<int> CommittingCountAsync(IMetadataStore store, string scope, string stream, CancellationToken cancellationToken) =>
        (await store.GetChildrenAsync(CommittingPath(scope, stream), cancellationToken)).Count;

    /// <summary>
    /// Transactions committing now whose merges go into one of <paramref name="segments"/> (each marker names its
    /// segments; one that names none counts), for a scale or a seal about to seal them.
    /// </summary>
    public static async ValueTask<int> CommittingIntoAsync(IMetadataStore store, string scope, string stream, IReadOnlySet<long> segments, CancellationToken cancellationToken)
    {
        var count = 0;
        foreach (var id in await store.GetChildrenAsync(CommittingPath(scope, stream), cancellationToken))
        {
            if (await store.GetAsync(MarkerPath(scope, stream, id), cancellationToken) is not { } marker)
            {
                continue; // merged meanwhile
            }

            var into = marker.Data.Length == 0 ? null : JsonSerializer.Deserialize(marker.Data, TransactionJsonContext.Default.ListInt64);
            count += into is null || into.Count == 0 || into.Any(segments.Contains) ? 1 : 0;
        }

        return count;
    }

    internal static string StreamRoot(string scope, string stream) => $"{Root}/{scope}/{stream}";

    private static string RecordsPath(string scope, string stream) => $"{StreamRoot(scope, stream)}/records";

    private static string RecordPath(string scope, string stream, string id) => $"{RecordsPath(scope, stream)}/{id}";

    private static string CommittingPath(string scope, string stream) => $"{StreamRoot(scope, stream)}/committing";

    private static string MarkerPath(string scope, string stream, string id) => $"{CommittingPath(scope, stream)}/{id}";

    private long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    // ---- Begin and ping ---------------------------------------------------------------------------------

    public async Task<BeginTransactionReply> BeginAsync(string scope, string stream, long leaseMs, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        var lease = LeaseOf(leaseMs);
        var (record, _) = await _streams.GetStreamAsync(scope, stream, cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Stream {scope}/{stream} does not exist."));
        if (record.State != StreamRecordState.Active)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Stream {scope}/{stream} is {record.State.ToString().ToLowerInvariant()}; it takes no transactions."));
        }

        var committing = await CommittingCountAsync(_store, scope, stream, cancellationToken);
        if (committing >= _options.MaxCommittingPerStream)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"Stream {scope}/{stream} has {committing} transactions committing (the bound is {_options.MaxCommittingPerStream}); retry once they have merged."));
        }

        var now = Now;
        var lifetime = Math.Min(lease.TotalMilliseconds * _options.LifetimeLeases, _options.MaxLifetime.TotalMilliseconds);
        var transaction = new TransactionRecord
        {
            Id = Guid.NewGuid().ToString("N"),
            Scope = scope,
            Stream = stream,
            Epoch = record.Epoch,
            Segments = [.. record.ActiveSegments.Select(s => SegmentName.ComposeId(s.Epoch, s.Number))],
            State = TransactionRecordState.Open,
            CreatedAtUnixMs = now,
            LeaseMs = (long)lease.TotalMilliseconds,
            LeaseExpiresAtUnixMs = now + (long)lease.TotalMilliseconds,
            MaxExpiresAtUnixMs = now + (long)lifetime,
        };
        if (!await _store.TryCreateAsync(RecordPath(scope, stream, transaction.Id), Serialize(transaction), cancellationToken))
        {
            throw new RpcException(new Status(StatusCode.Aborted, "A transaction id collided; retry."));
        }

        Begun.Add(1);
        var reply = new BeginTransactionReply { Transaction = ToInfo(transaction) };
        reply.Segments.AddRange(record.ActiveSegments.Select(s => new SegmentRange
        {
            SegmentId = SegmentName.ComposeId(s.Epoch, s.Number),
            Segment = new SegmentName(scope, stream, s.Number, s.Epoch).ToString(),
            KeyStart = s.KeyStart,
            KeyEnd = s.KeyEnd,
        }));
        return reply;
    }

    public async Task<TransactionInfo> PingAsync(TransactionRef reference, long leaseMs, CancellationToken cancellationToken)
    {
        for (var round = 0; ; round++)
        {
            var (record, version) = await GetRequiredAsync(reference, cancellationToken);
            if (record.State != TransactionRecordState.Open)
            {
                throw NotOpen(record);
            }

            var now = Now;
            if (record.ExpiryAt(now) is { } expired)
            {
                await AbortCoreAsync(record, version, $"{expired}", cancellationToken);
                throw NotOpen((await GetRequiredAsync(reference, cancellationToken)).Record);
            }

            var lease = leaseMs == 0 ? record.LeaseMs : (long)LeaseOf(leaseMs).TotalMilliseconds;
            var renewed = record with { LeaseMs = lease, LeaseExpiresAtUnixMs = Math.Min(now + lease, record.MaxExpiresAtUnixMs) };
            if (await _store.TrySetAsync(RecordPath(record.Scope, record.Stream, record.Id), Serialize(renewed), version, cancellationToken) is not null)
            {
                return ToInfo(renewed);
            }

            if (round == 8)
            {
                throw new RpcException(new Status(StatusCode.Aborted, $"Transaction {record.Id} kept changing; retry the ping."));
            }
        }
    }

    // ---- Commit -----------------------------------------------------------------------------------------

    /// <summary>
    /// Decides the commit (or finds it decided) and, with <paramref name="wait"/>, answers once it is merged. A commit
    /// whose caller goes away still completes.
    /// </summary>
    public async Task<TransactionInfo> CommitAsync(TransactionRef reference, IReadOnlyList<long> touched, bool wait, CancellationToken cancellationToken)
    {
        var deadline = _clock.GetUtcNow() + ScaleWait;
        for (var round = 0; round < 64 && _clock.GetUtcNow() < deadline; round++)
        {
            var (record, version) = await GetRequiredAsync(reference, cancellationToken);
            switch (record.State)
            {
                case TransactionRecordState.Committed:
                    return ToInfo(record);
                case TransactionRecordState.Committing:
                    return wait ? ToInfo(await _committer.CommitAsync(record, cancellationToken)) : ToInfo(record);
                case TransactionRecordState.Aborting or TransactionRecordState.Aborted:
                    throw NotOpen(record);
            }

            foreach (var id in touched.Where(id => !record.Segments.Contains(id)))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument,
                    $"Segment id {id} is not one of transaction {record.Id}'s segments (those of epoch {record.Epoch}: {string.Join(", ", record.Segments)})."));
            }

            if (record.ExpiryAt(Now) is { } expired)
            {
                await AbortCoreAsync(record, version, expired, cancellationToken);
                continue;
            }

            var (stream, streamVersion) = await _streams.GetStreamAsync(record.Scope, record.Stream, cancellationToken)
                ?? throw new RpcException(new Status(StatusCode.NotFound, $"Stream {record.Scope}/{record.Stream} does not exist."));
            var (reason, scaling, rerouted) = PlanCommit(stream, touched);
            if (reason is not null)
            {
                await AbortCoreAsync(record, version, reason, cancellationToken);
                continue;
            }

            if (scaling)
            {
                // A scale is sealing segments the commit needs: decide once it is through (it takes milliseconds). The
                // lease must not run out meanwhile: the caller is here, asking to commit.
                var renewed = record with { LeaseExpiresAtUnixMs = Math.Min(Now + record.LeaseMs, record.MaxExpiresAtUnixMs) };
                await _store.TrySetAsync(RecordPath(record.Scope, record.Stream, record.Id), Serialize(renewed), version, cancellationToken);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, 20 << Math.Min(round, 5))), cancellationToken);
                continue;
            }

            var committing = record with
            {
                State = TransactionRecordState.Committing,
                CommittingAtUnixMs = Now,
                Touched = [.. touched.Distinct().Order()],
                Rerouted = rerouted.Count == 0 ? null : rerouted,
            };
            var decided = await _store.TryCommitAsync(
            [
                new MetadataOp.Set(RecordPath(record.Scope, record.Stream, record.Id), Serialize(committing), version),
                new MetadataOp.Create(MarkerPath(record.Scope, record.Stream, record.Id), JsonSerializer.SerializeToUtf8Bytes(
                    [.. committing.Touched.Concat(rerouted.SelectMany(r => r.Targets)).Distinct().Order()], TransactionJsonContext.Default.ListInt64)),
                new MetadataOp.Check(StreamMetadataStore.StreamPath(record.Scope, record.Stream), streamVersion),
            ], cancellationToken);
            if (!decided)
            {
                continue; // the record or the stream changed meanwhile: look again
            }

            _logger.LogDebug("Transaction {Id} on {Scope}/{Stream} is committing into {Segments} segment(s).", record.Id, record.Scope, record.Stream, committing.Touched.Count);
            var merging = _committer.CommitAsync(committing, CancellationToken.None);
            Observe(merging);
            return wait ? ToInfo(await merging.WaitAsync(cancellationToken)) : ToInfo(committing);
        }

        throw new RpcException(new Status(StatusCode.Unavailable, $"Transaction {reference.TransactionId}'s stream kept changing (scales under way); retry the commit."));
    }

    /// <summary>How long a commit waits for a scale that is sealing its segments before it asks the caller to retry.</summary>
    private static readonly TimeSpan ScaleWait = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How the touched segments take the commit in the stream as it is now: why it must be aborted (the stream is no
    /// longer open), or that a scale is sealing a segment it needs (wait), or which touched segments a scale sealed since
    /// the transaction began and which segments own their keys now (merged into by key). A segment a recorded scale seals
    /// takes no new commit: the commit waits for the scale, which waits only for the commits decided before it was recorded.
    /// </summary>
    private static (string? Abort, bool Scaling, List<RerouteRecord> Rerouted) PlanCommit(StreamRecord stream, IReadOnlyList<long> touched)
    {
        if (stream.State != StreamRecordState.Active)
        {
            return ($"the stream was {stream.State.ToString().ToLowerInvariant()} before it committed", false, []);
        }

        var sealing = stream.Transition?.SealSegmentIds.ToHashSet() ?? [];
        var active = stream.ActiveSegments.ToDictionary(s => SegmentName.ComposeId(s.Epoch, s.Number));
        var rerouted = new List<RerouteRecord>();
        foreach (var id in touched.Distinct())
        {
            if (active.ContainsKey(id))
            {
                if (sealing.Contains(id))
                {
                    return (null, true, []);
                }

                continue;
            }

            var named = SegmentName.FromId(stream.Scope, stream.Stream, id);
            var sealedSegment = stream.FindSegment(named.Number, named.Epoch)
                ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Segment id {id} is no longer a segment of {stream.Scope}/{stream.Stream}."));
            var targets = active.Where(a => a.Value.KeyStart < sealedSegment.KeyEnd && sealedSegment.KeyStart < a.Value.KeyEnd).OrderBy(a => a.Value.KeyStart).Select(a => a.Key).ToList();
            if (targets.Any(sealing.Contains))
            {
                return (null, true, []);
            }

            rerouted.Add(new RerouteRecord(id, targets));
        }

        return (null, false, rerouted);
    }

    // ---- Abort, status, list ------------------------------------------------------------------------------

    public async Task<TransactionInfo> AbortAsync(TransactionRef reference, CancellationToken cancellationToken)
    {
        var (record, version) = await GetRequiredAsync(reference, cancellationToken);
        if (record.State is TransactionRecordState.Committing or TransactionRecordState.Committed)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Transaction {record.Id} is {record.State.ToString().ToLowerInvariant()}; it can no longer be aborted."));
        }

        return ToInfo(await AbortCoreAsync(record, version, "aborted by the client", cancellationToken));
    }

    /// <summary>
    /// Records ABORTING (unless another state won the race), deletes the transaction's segments and records ABORTED.
    /// Returns the record as it ends up.
    /// </summary>
    private async Task<TransactionRecord> AbortCoreAsync(TransactionRecord record, long version, string reason, CancellationToken cancellationToken)
    {
        var path = RecordPath(record.Scope, record.Stream, record.Id);
        if (record.State == TransactionRecordState.Open)
        {
            var aborting = record with { State = TransactionRecordState.Aborting, AbortReason = reason };
            if (await _store.TrySetAsync(path, Serialize(aborting), version, cancellationToken) is not { } next)
            {
                var now = await ReadAsync(record.Scope, record.Stream, record.Id, cancellationToken);
                return now is { Record.State: TransactionRecordState.Aborting } again ? await AbortCoreAsync(again.Record, again.Version, reason, cancellationToken) : now?.Record ?? record;
            }

            (record, version) = (aborting, next);
            _logger.LogInformation("Aborting transaction {Id} on {Scope}/{Stream}: {Reason}.", record.Id, record.Scope, record.Stream, reason);
        }

        if (record.State != TransactionRecordState.Aborting)
        {
            return record;
        }

        var id = Guid.ParseExact(record.Id, "N");
        await Task.WhenAll(record.Segments.Select(s =>
            _segments.DeleteSegmentAsync(TransactionName.Compose(SegmentName.FromId(record.Scope, record.Stream, s).ToString(), id), cancellationToken)));
        var aborted = record with { State = TransactionRecordState.Aborted, FinishedAtUnixMs = Now };
        if (await _store.TrySetAsync(path, Serialize(aborted), version, cancellationToken) is not null)
        {
            Finished.Add(1, new KeyValuePair<string, object?>("outcome", "aborted"));
            return aborted;
        }

        return (await ReadAsync(record.Scope, record.Stream, record.Id, cancellationToken))?.Record ?? aborted;
    }

    public async Task<TransactionInfo> GetAsync(TransactionRef reference, CancellationToken cancellationToken) =>
        ToInfo((await GetRequiredAsync(reference, cancellationToken)).Record);

    public async Task<TransactionList> ListAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        ValidateName(scope, "scope");
        ValidateName(stream, "stream");
        var list = new TransactionList();
        foreach (var id in await _store.GetChildrenAsync(RecordsPath(scope, stream), cancellationToken))
        {
            if (await ReadAsync(scope, stream, id, cancellationToken) is { } found)
            {
                list.Transactions.Add(ToInfo(found.Record));
            }
        }

        return list;
    }

    /// <summary>
    /// Forgets every transaction of a stream being deleted, after deleting the segments of those not finished through
    /// <paramref name="deleteSegment"/>.
    /// </summary>
    public static async Task ForgetStreamAsync(IMetadataStore store, string scope, string stream, Func<string, Task> deleteSegment, CancellationToken cancellationToken)
    {
        foreach (var id in await store.GetChildrenAsync(RecordsPath(scope, stream), cancellationToken))
        {
            if (await store.GetAsync(RecordPath(scope, stream, id), cancellationToken) is { } value
                && JsonSerializer.Deserialize(value.Data, TransactionJsonContext.Default.TransactionRecord) is { State: not (TransactionRecordState.Committed or TransactionRecordState.Aborted) } open)
            {
                var transaction = Guid.ParseExact(open.Id, "N");
                await Task.WhenAll(open.Segments.Select(s => deleteSegment(TransactionName.Compose(SegmentName.FromId(scope, stream, s).ToString(), transaction))));
            }
        }

        foreach (var id in await store.GetChildrenAsync(CommittingPath(scope, stream), cancellationToken))
        {
            await store.TryDeleteAsync(MarkerPath(scope, stream, id), -1, cancellationToken);
        }

        foreach (var id in await store.GetChildrenAsync(RecordsPath(scope, stream), cancellationToken))
        {
            await store.TryDeleteAsync(RecordPath(scope, stream, id), -1, cancellationToken);
        }
    }

    // ---- Records -------------------------------------------------------------------------------------------

    private async Task<(TransactionRecord Record, long Version)> GetRequiredAsync(TransactionRef reference, CancellationToken cancellationToken)
    {
        ValidateName(reference.Scope, "scope");
        ValidateName(reference.Stream, "stream");
        if (!Guid.TryParseExact(reference.TransactionId, "N", out var id) || id.ToString("N") != reference.TransactionId)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{reference.TransactionId}' is not a transaction id (32 lowercase hex digits)."));
        }

        return await ReadAsync(reference.Scope, reference.Stream, reference.TransactionId, cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound,
                $"Stream {reference.Scope}/{reference.Stream} has no transaction {reference.TransactionId} (never begun, or finished more than {_options.FinishedRetention.TotalMinutes:0.#} min ago)."));
    }

    private async Task<(TransactionRecord Record, long Version)?> ReadAsync(string scope, string stream, string id, CancellationToken cancellationToken)
    {
        var value = await _store.GetAsync(RecordPath(scope, stream, id), cancellationToken);
        return value is { } v ? (JsonSerializer.Deserialize(v.Data, TransactionJsonContext.Default.TransactionRecord)!, v.Version) : null;
    }

    private static byte[] Serialize(TransactionRecord record) => JsonSerializer.SerializeToUtf8Bytes(record, TransactionJsonContext.Default.TransactionRecord);

    private TimeSpan LeaseOf(long leaseMs)
    {
        if (leaseMs < 0 || leaseMs > _options.MaxLease.TotalMilliseconds)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"lease_ms must be between 0 (the default, {_options.DefaultLease.TotalSeconds:0} s) and {_options.MaxLease.TotalMilliseconds:0} (is {leaseMs})."));
        }

        return leaseMs == 0 ? _options.DefaultLease : TimeSpan.FromMilliseconds(leaseMs);
    }

    private static RpcException NotOpen(TransactionRecord record) => new(new Status(StatusCode.FailedPrecondition, record.State switch
    {
        TransactionRecordState.Aborting or TransactionRecordState.Aborted => $"Transaction {record.Id} was aborted: {record.AbortReason ?? "no reason recorded"}. Nothing of it is visible.",
        _ => $"Transaction {record.Id} is {record.State.ToString().ToLowerInvariant()}.",
    }));

    internal static TransactionInfo ToInfo(TransactionRecord record)
    {
        var info = new TransactionInfo
        {
            Scope = record.Scope,
            Stream = record.Stream,
            TransactionId = record.Id,
            State = record.State switch
            {
                TransactionRecordState.Open => TransactionState.Open,
                TransactionRecordState.Committing => TransactionState.Committing,
                TransactionRecordState.Committed => TransactionState.Committed,
                TransactionRecordState.Aborting => TransactionState.Aborting,
                _ => TransactionState.Aborted,
            },
            Epoch = record.Epoch,
            CreatedAtUnixMs = record.CreatedAtUnixMs,
            LeaseExpiresAtUnixMs = record.LeaseExpiresAtUnixMs,
            MaxExpiresAtUnixMs = record.MaxExpiresAtUnixMs,
            CommittingAtUnixMs = record.CommittingAtUnixMs,
            FinishedAtUnixMs = record.FinishedAtUnixMs,
            AbortReason = record.AbortReason ?? string.Empty,
        };
        info.SegmentIds.AddRange(record.Touched);
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
