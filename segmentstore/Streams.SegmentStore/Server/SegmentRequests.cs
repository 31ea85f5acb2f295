using Google.Protobuf;
using Grpc.Core;
using Streams.Common.Naming;
using Streams.Common.Server.Framing;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Server;

/// <summary>
/// The segment requests both carriers serve, with their validation. Failures are <see cref="RpcException"/>s
/// carrying the status the gRPC carrier answers (the raw carrier sends the same code in an ErrorReply).
/// </summary>
public sealed class SegmentRequests
{
    /// <summary>Longest tail wait a reader may ask for; readers poll again after it.</summary>
    public static readonly TimeSpan MaxReadWait = TimeSpan.FromSeconds(60);

    /// <summary>A read answer's header and framing, rounded up.</summary>
    private const int ReplyHeaderCost = 64;

    private readonly SegmentStoreService _store;

    public SegmentRequests(SegmentStoreService store)
    {
        _store = store;
    }

    public SegmentStoreService Store => _store;

    public async ValueTask<SegmentRead> ReadAsync(ReadSegmentRequest request, CancellationToken cancellationToken)
    {
        if (request.Offset < 0 || request.MaxBytes < 0 || request.WaitMillis < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "offset, max_bytes and wait_millis must not be negative."));
        }

        // One span per read request (a block of up to max_bytes), tagged with what it returned.
        using var activity = SegmentStoreTracing.Source.StartActivity("Read");
        activity?.SetTag("streams.segment", request.Segment).SetTag("streams.offset", request.Offset);
        var container = await ResolveAsync(request.Segment, cancellationToken);
        var wait = TimeSpan.FromMilliseconds(Math.Min(request.WaitMillis, MaxReadWait.TotalMilliseconds));
        SegmentRead result;
        try
        {
            result = await container.ReadAsync(request.Segment, request.Offset, request.MaxBytes, wait, cancellationToken);
            activity?.SetTag("streams.bytes", result.Data.Length).SetTag("streams.read.status", result.Status.ToString());
        }
        catch (DataCorruptionException e)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"Segment {request.Segment} at offset {request.Offset}: {e.Message}"));
        }
        catch (Tier2.ChunkStorageUnavailableException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"Segment {request.Segment} at offset {request.Offset} is in Tier 2, which cannot be read now ({e.Message}); retry."));
        }

        if (result.Error is { } error)
        {
            throw ToException(error);
        }

        return result;
    }

    /// <summary>
    /// Reads, holding what the answer costs against the connection's <paramref name="budget"/>; returns the answer and
    /// the bytes taken, which the caller gives back once the answer has reached the socket. A tail read waits for data
    /// holding nothing. When the answer does not fit (the client is slow to take earlier ones), it is released and
    /// read again, without waiting for data, once its cost fits: a stuck client pins at most its budget, and never
    /// cached frames that the cache itself let go.
    /// </summary>
    public async ValueTask<(SegmentRead Result, long Cost)> ReadAsync(ReadSegmentRequest request, ReplyBudget budget, CancellationToken cancellationToken)
    {
        var result = await ReadAsync(request, cancellationToken);
        var cost = CostOf(result);
        if (result.Data.IsEmpty)
        {
            // No data: the answer is a header, counted like any small reply.
            budget.Add(cost);
            return (result, cost);
        }

        if (budget.TryAcquire(cost))
        {
            return (result, cost);
        }

        var length = (int)result.Data.Length;
        result.Dispose();
        await budget.AcquireAsync(cost, cancellationToken);
        try
        {
            var again = request.Clone();
            again.MaxBytes = length;
            again.WaitMillis = 0;
            result = await ReadAsync(again, cancellationToken);
        }
        catch
        {
            budget.Release(cost);
            throw;
        }

        // The same bytes, but the cache may have moved meanwhile: settle the difference.
        var actual = CostOf(result);
        if (actual > cost)
        {
            budget.Add(actual - cost);
        }
        else
        {
            budget.Release(cost - actual);
        }

        return (result, actual);
    }

    /// <summary>What an answer costs a connection until it is sent: the frames it pins, at least its data, and its header.</summary>
    internal static long CostOf(SegmentRead result) => Math.Max(result.Data.Length, result.HeldBytes) + ReplyHeaderCost;

    public SegmentInfo GetInfo(SegmentRequest request) =>
        Resolve(request.Segment).GetInfo(request.Segment)
        ?? throw new RpcException(new Status(StatusCode.NotFound, $"Segment {request.Segment} does not exist."));

    public async Task<SegmentInfo> CreateAsync(CreateSegmentRequest request, CancellationToken cancellationToken)
    {
        if (TransactionName.IsTransaction(request.Segment))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{request.Segment}' is a transaction segment: its writer's first append setup creates it."));
        }

        var seed = request.Seed is null ? null : SeedOf(request.Seed);
        var container = await ResolveAsync(request.Segment, cancellationToken);
        Check(await container.CreateSegmentAsync(request.Segment, seed, cancellationToken));
        return container.GetInfo(request.Segment) ?? throw new RpcException(new Status(StatusCode.Unavailable, $"Segment {request.Segment} vanished after creation; retry."));
    }

    public async Task<SegmentInfo> SealAsync(SegmentRequest request, CancellationToken cancellationToken)
    {
        var container = await ResolveAsync(request.Segment, cancellationToken);
        Check(await container.SealSegmentAsync(request.Segment, cancellationToken));
        return GetInfo(request);
    }

    public async Task<SegmentInfo> TruncateAsync(TruncateSegmentRequest request, CancellationToken cancellationToken)
    {
        var container = await ResolveAsync(request.Segment, cancellationToken);
        Check(await container.TruncateSegmentAsync(request.Segment, request.Offset, cancellationToken));
        return GetInfo(new SegmentRequest { Segment = request.Segment });
    }

    public async Task<DeleteSegmentReply> DeleteAsync(SegmentRequest request, CancellationToken cancellationToken)
    {
        var container = await ResolveAsync(request.Segment, cancellationToken);
        var outcome = await container.DeleteSegmentAsync(request.Segment, cancellationToken);
        if (outcome.Status == OutcomeStatus.NoSuchSegment)
        {
            return new DeleteSegmentReply { Segment = request.Segment, Deleted = false };
        }

        Check(outcome);
        return new DeleteSegmentReply { Segment = request.Segment, Deleted = true };
    }

    /// <summary>Merges transaction segments into their parent (<see cref="SegmentContainer.MergeAsync"/>).</summary>
    public async Task<MergeSegmentsReply> MergeAsync(MergeSegmentsRequest request, CancellationToken cancellationToken)
    {
        if (!SegmentName.TryParse(request.Target, out _))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{request.Target}' is not a segment name (expected scope/stream/number.#epoch.N)."));
        }

        if (request.Sources.Count > MaxMergeSources)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"A merge takes at most {MaxMergeSources} sources, not {request.Sources.Count}; send several."));
        }

        if (request.Sources.Count > 0 && request.Parts.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "A merge names sources or carries parts, not both; send two requests, in the order they must land."));
        }

        if (request.Parts.Count > MaxMergeSources)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"A merge carries at most {MaxMergeSources} parts, not {request.Parts.Count}; send several."));
        }

        var container = await ResolveAsync(request.Target, cancellationToken);
        (OperationOutcome Outcome, int Merged) merging;
        try
        {
            merging = request.Parts.Count > 0
                ? await container.MergePartsAsync(request.Target, [.. request.Parts.Select(p => (p.Source, p.Data.Memory, p.EventCount))], cancellationToken)
                : await container.MergeAsync(request.Target, [.. request.Sources], cancellationToken);
        }
        catch (Exception e) when (e is InvalidDataException or DataCorruptionException)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"Merging into {request.Target}: {e.Message}"));
        }
        catch (Exception e) when (e is InvalidOperationException or Tier2.ChunkStorageUnavailableException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"Merging into {request.Target} failed ({e.Message}); retry."));
        }

        var (outcome, merged) = merging;
        Check(outcome);
        return new MergeSegmentsReply { Target = request.Target, Length = outcome.SegmentLength, Merged = merged };
    }

    /// <summary>Sources one merge request may name.</summary>
    public const int MaxMergeSources = 1000;

    /// <summary>
    /// Most inherited ranges one writer record may carry: a scale makes a successor from a handful of predecessors, each
    /// giving one range, so anything near this is a bug in the caller.
    /// </summary>
    public const int MaxInheritedRanges = 1024;

    /// <summary>The segment's writer records (docs/scaling.md): each writer's own last durable event number and what it inherited.</summary>
    public Task<WriterRecords> GetWriterRecordsAsync(SegmentRequest request, CancellationToken cancellationToken)
    {
        var (isSealed, writers) = Resolve(request.Segment).GetWriterRecords(request.Segment)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Segment {request.Segment} does not exist."));
        var reply = new WriterRecords { Segment = request.Segment, Sealed = isSealed };
        foreach (var writer in writers)
        {
            var record = new Contracts.SegmentStore.WriterRecord
            {
                WriterId = ByteString.CopyFrom(writer.Writer.ToByteArray()),
                LastEventNumber = writer.LastEventNumber,
            };
            record.Inherited.Add(writer.Inherited.Select(ToContract));
            reply.Writers.Add(record);
        }

        return Task.FromResult(reply);
    }

    /// <summary>
    /// Sets the inherited ranges of the named writers, replacing what they inherited before (their own event numbers
    /// are untouched); a logged operation, answered once durable. Idempotent, and valid on a segment nobody wrote to.
    /// </summary>
    public async Task<SegmentInfo> InheritWriterRecordsAsync(InheritWriterRecordsRequest request, CancellationToken cancellationToken)
    {
        var writers = new List<(Guid, InheritedRange[])>(request.Writers.Count);
        foreach (var w in request.Writers)
        {
            if (w.WriterId.Length != 16)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"writers[{writers.Count}].writer_id must be 16 bytes (a UUID), not {w.WriterId.Length}."));
            }

            if (w.Inherited.Count > MaxInheritedRanges)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"writers[{writers.Count}] has {w.Inherited.Count} inherited ranges; at most {MaxInheritedRanges} are kept."));
            }

            var ranges = new InheritedRange[w.Inherited.Count];
            for (var i = 0; i < ranges.Length; i++)
            {
                var r = w.Inherited[i];
                if (!(r.KeyStart >= 0 && r.KeyStart < r.KeyEnd && r.KeyEnd <= 1) || r.LastEventNumber < -1)
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument,
                        $"writers[{writers.Count}].inherited[{i}] must have 0 <= key_start < key_end <= 1 and last_event_number >= -1 (is [{r.KeyStart}, {r.KeyEnd}) up to {r.LastEventNumber})."));
                }

                ranges[i] = new InheritedRange(r.KeyStart, r.KeyEnd, r.LastEventNumber);
            }

            writers.Add((new Guid(w.WriterId.Span), ranges));
        }

        var container = await ResolveAsync(request.Segment, cancellationToken);
        Check(await container.InheritWritersAsync(request.Segment, writers, cancellationToken));
        return GetInfo(new SegmentRequest { Segment = request.Segment });
    }

    internal static InheritedWriterRange ToContract(InheritedRange range) =>
        new() { KeyStart = range.KeyStart, KeyEnd = range.KeyEnd, LastEventNumber = range.LastEventNumber };

    /// <summary>A successor's starting load, checked.</summary>
    private static LoadState SeedOf(SegmentLoadSeed seed)
    {
        if (seed.EventRates.Count != seed.ByteRates.Count || seed.EventRates.Count > SegmentLoadMeter.MaxWindows)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"seed must have as many event_rates as byte_rates, at most {SegmentLoadMeter.MaxWindows} (has {seed.EventRates.Count} and {seed.ByteRates.Count})."));
        }

        if (seed.EventRates.Concat(seed.ByteRates).Any(r => !double.IsFinite(r) || r < 0) || seed.AgeMs < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "seed rates must be finite and not negative, and seed.age_ms not negative."));
        }

        return new LoadState([.. seed.EventRates], [.. seed.ByteRates], seed.AgeMs, []);
    }

    public static RpcException ToException(in OperationOutcome outcome) => new(new Status(outcome.Status switch
    {
        OutcomeStatus.NoSuchSegment => StatusCode.NotFound,
        OutcomeStatus.SegmentExists => StatusCode.AlreadyExists,
        OutcomeStatus.SegmentSealed => StatusCode.FailedPrecondition,
        OutcomeStatus.ConditionFailed => StatusCode.FailedPrecondition,
        OutcomeStatus.InvalidArgument => StatusCode.InvalidArgument,
        OutcomeStatus.ContainerUnavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    }, outcome.Message ?? outcome.Status.ToString()));

    /// <summary><see cref="Resolve"/>, waiting for a container this store is still recovering (<see cref="SegmentStoreService.ContainerForAsync"/>).</summary>
    private async ValueTask<SegmentContainer> ResolveAsync(string segment, CancellationToken cancellationToken)
    {
        CheckName(segment);
        var (container, error) = await _store.ContainerForAsync(segment, cancellationToken);
        return container ?? throw ToException(error);
    }

    private SegmentContainer Resolve(string segment)
    {
        CheckName(segment);
        return _store.ContainerFor(segment, out var error) ?? throw ToException(error);
    }

    private static void CheckName(string segment)
    {
        if (!TransactionName.IsSegmentOrTransaction(segment))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{segment}' is not a segment name (expected scope/stream/number.#epoch.N, or that and #txn.<32 hex digits>)."));
        }
    }

    private static void Check(in OperationOutcome outcome)
    {
        if (!outcome.IsSuccess)
        {
            throw ToException(outcome);
        }
    }
}
