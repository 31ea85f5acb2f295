using Grpc.Core;
using Streams.Common.Naming;
using Streams.Common.Server.Framing;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;
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
        var container = Resolve(request.Segment);
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
        var container = Resolve(request.Segment);
        Check(await container.CreateSegmentAsync(request.Segment, cancellationToken));
        return container.GetInfo(request.Segment) ?? throw new RpcException(new Status(StatusCode.Unavailable, $"Segment {request.Segment} vanished after creation; retry."));
    }

    public async Task<SegmentInfo> SealAsync(SegmentRequest request, CancellationToken cancellationToken)
    {
        var container = Resolve(request.Segment);
        Check(await container.SealSegmentAsync(request.Segment, cancellationToken));
        return GetInfo(request);
    }

    public async Task<SegmentInfo> TruncateAsync(TruncateSegmentRequest request, CancellationToken cancellationToken)
    {
        var container = Resolve(request.Segment);
        Check(await container.TruncateSegmentAsync(request.Segment, request.Offset, cancellationToken));
        return GetInfo(new SegmentRequest { Segment = request.Segment });
    }

    public async Task<DeleteSegmentReply> DeleteAsync(SegmentRequest request, CancellationToken cancellationToken)
    {
        var container = Resolve(request.Segment);
        var outcome = await container.DeleteSegmentAsync(request.Segment, cancellationToken);
        if (outcome.Status == OutcomeStatus.NoSuchSegment)
        {
            return new DeleteSegmentReply { Segment = request.Segment, Deleted = false };
        }

        Check(outcome);
        return new DeleteSegmentReply { Segment = request.Segment, Deleted = true };
    }

    /// <summary>The segment's writer records (docs/scaling.md).</summary>
    public Task<WriterRecords> GetWriterRecordsAsync(SegmentRequest request, CancellationToken cancellationToken) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "GetWriterRecords is not built yet."));

    /// <summary>Sets the inherited ranges of the named writers, replacing what they inherited before.</summary>
    public Task<SegmentInfo> InheritWriterRecordsAsync(InheritWriterRecordsRequest request, CancellationToken cancellationToken) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "InheritWriterRecords is not built yet."));

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

    private SegmentContainer Resolve(string segment)
    {
        if (!SegmentName.TryParse(segment, out _))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"'{segment}' is not a segment name (expected scope/stream/number.#epoch.N)."));
        }

        return _store.ContainerFor(segment, out var error) ?? throw ToException(error);
    }

    private static void Check(in OperationOutcome outcome)
    {
        if (!outcome.IsSuccess)
        {
            throw ToException(outcome);
        }
    }
}
