using System.Runtime.CompilerServices;
using Grpc.Core;
using Streams.Client.Internal;
using Streams.Client.Reading;
using Streams.Client.Serialization;

namespace Streams.Client.Batch;

/// <summary>
/// Reads a stream between two cuts as independent segment ranges, for bulk work (exports, backfills) rather than for
/// following a stream: <see cref="ListRangesAsync"/> lists the ranges across every epoch, and each range can be read
/// on its own, in this process or in another, in parallel with the others. Unlike a reader group, nothing coordinates
/// the readers and nothing is committed; per-key order holds within a range, and across ranges when they are taken in
/// the listed order (by segment id: a segment's predecessors come first). Thread-safe.
/// </summary>
public sealed class BatchClient
{
    /// <summary>Segment stores asked at once for the lengths of the segments a listing covers.</summary>
    private const int InfoParallelism = 8;

    private readonly ControllerClient _controller;
    private readonly ConnectionPool _pool;
    private readonly TimeSpan _reconnectTimeout;

    internal BatchClient(ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout)
    {
        _controller = controller;
        _pool = pool;
        _reconnectTimeout = reconnectTimeout;
    }

    /// <summary>
    /// The ranges of <paramref name="scope"/>/<paramref name="stream"/> between <paramref name="from"/> (null: the
    /// stream's head, after any truncation) and <paramref name="to"/> (null: its tail now), across every epoch, by
    /// segment id, each with data (none is empty). Data truncated away before <paramref name="from"/> is not listed.
    /// Throws <see cref="ArgumentException"/> for a cut of another stream, a cut that names a segment the stream does
    /// not have, leaves a routing key uncovered, ends before it starts or lies beyond a segment's data, and
    /// <see cref="StreamsException"/> if the stream does not exist or the store cannot be reached.
    /// </summary>
    public async Task<IReadOnlyList<SegmentRange>> ListRangesAsync(string scope, string stream, StreamCut? from = null, StreamCut? to = null, CancellationToken cancellationToken = default)
    {
        CheckCut(scope, stream, from, "start");
        CheckCut(scope, stream, to, "end");
        var list = await _controller.ListSegmentsAsync(scope, stream, cancellationToken);
        var sealedIds = list.Segments.Where(s => s.HasSealedEpoch).Select(s => s.Segment.SegmentId).ToHashSet();
        var planned = RangePlanner.Plan(scope, stream, list, from?.Positions, to?.Positions);
        var ranges = new SegmentRange?[planned.Count];
        await Parallel.ForAsync(0, planned.Count, new ParallelOptions { MaxDegreeOfParallelism = InfoParallelism, CancellationToken = cancellationToken }, async (i, token) =>
            ranges[i] = await ResolveAsync(scope, stream, planned[i], sealedIds.Contains(planned[i].Segment.SegmentId), token));
        return [.. ranges.Where(r => r is { Length: > 0 }).Select(r => r!)];
    }

    /// <summary>
    /// The events of one range, in offset order, read as they are consumed (at most
    /// <see cref="BatchReadOptions.BufferedReads"/> reads ahead). Throws <see cref="StreamsException"/> if the segment
    /// is gone, was truncated into the range after it was listed, or its store stays unreachable, and
    /// <see cref="InvalidDataException"/> if the range does not hold whole events.
    /// </summary>
    public async IAsyncEnumerable<EventRead<T>> ReadRangeAsync<T>(SegmentRange range, IEventSerializer<T> serializer, BatchReadOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(range);
        var settings = Settings(options);
        await using var pump = Start(range, serializer, settings, cancellationToken);
        await foreach (var e in pump.ReadAllAsync(cancellationToken))
        {
            yield return e;
        }
    }

    /// <summary>
    /// The events of <paramref name="ranges"/>, range after range in the order given and each in offset order, while
    /// up to <see cref="BatchReadOptions.Parallelism"/> ranges are read at once (the next ones ahead, into bounded
    /// buffers). Throws as <see cref="ReadRangeAsync{T}"/>.
    /// </summary>
    public async IAsyncEnumerable<EventRead<T>> ReadRangesAsync<T>(IReadOnlyList<SegmentRange> ranges, IEventSerializer<T> serializer, BatchReadOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var settings = Settings(options);
        var ahead = new Queue<RangePump<T>>();
        var next = 0;
        try
        {
            while (next < ranges.Count || ahead.Count > 0)
            {
                while (next < ranges.Count && ahead.Count < settings.Parallelism)
                {
                    ahead.Enqueue(Start(ranges[next++], serializer, settings, cancellationToken));
                }

                await using var current = ahead.Dequeue();
                await foreach (var e in current.ReadAllAsync(cancellationToken))
                {
                    yield return e;
                }
            }
        }
        finally
        {
            while (ahead.TryDequeue(out var pump))
            {
                await pump.DisposeAsync();
            }
        }
    }

    private static BatchReadOptions Settings(BatchReadOptions? options)
    {
        var settings = options ?? new BatchReadOptions();
        settings.Validate();
        return settings;
    }

    private static void CheckCut(string scope, string stream, StreamCut? cut, string which)
    {
        if (cut is not null && (cut.Scope != scope || cut.Stream != stream))
        {
            throw new ArgumentException($"The {which} cut is of {cut.Scope}/{cut.Stream}, not of {scope}/{stream}.");
        }
    }

    private RangePump<T> Start<T>(SegmentRange range, IEventSerializer<T> serializer, BatchReadOptions settings, CancellationToken cancellationToken)
    {
        var reader = new SegmentEventReader<T>(serializer, _controller, _pool, _reconnectTimeout, settings.ReadSize, follow: null);
        return new RangePump<T>(reader, range, settings.BufferedReads, cancellationToken);
    }

    /// <summary>
    /// A planned segment's range with its open ends filled in from the store: its head (after truncation) and its
    /// length. Null for a sealed segment that no longer exists (truncated away whole).
    /// </summary>
    private async Task<SegmentRange?> ResolveAsync(string scope, string stream, RangePlanner.Planned planned, bool sealedSegment, CancellationToken cancellationToken)
    {
        var segment = planned.Segment;
        Contracts.SegmentStore.SegmentInfo info;
        try
        {
            var endpoint = await _controller.GetEndpointAsync(segment.Segment, cancellationToken);
            var connection = await _pool.GetAsync(endpoint, cancellationToken);
            info = await connection.GetInfoAsync(segment.Segment, cancellationToken);
        }
        catch (Exception e) when (sealedSegment && e is RpcException { StatusCode: StatusCode.NotFound } or StreamsException { StatusCode: StatusCode.NotFound })
        {
            return null;
        }
        catch (RpcException e)
        {
            throw StreamsException.From(e);
        }

        if (planned.Start > info.Length || planned.End > info.Length)
        {
            throw new ArgumentException($"A cut puts segment {segment.Segment} at {Math.Max(planned.Start ?? 0, planned.End ?? 0)}, beyond its length {info.Length}.");
        }

        // Data before the segment's head was truncated away: the range starts where data remains.
        var start = Math.Max(planned.Start ?? info.StartOffset, info.StartOffset);
        var end = Math.Max(start, planned.End ?? info.Length);
        return new SegmentRange(scope, stream, segment.Segment, segment.SegmentId, segment.KeyStart, segment.KeyEnd, start, end);
    }
}
