using Streams.Common.Contracts;
using Contract = Streams.Contracts.Controller;

namespace Streams.Client.Batch;

/// <summary>
/// Which segments of a stream, every epoch, hold data between two cuts, and from where to where (<see cref="StreamCutRules"/>).
/// Pure: the offsets it leaves open (a segment's head, its current length) are filled in from the segment store.
/// <para>
/// A segment the start cut names starts at the cut's offset; one the cut lies after (a newer segment of the cut
/// overlaps it) holds nothing after the cut; any other starts at its head. A segment the end cut names ends at the
/// cut's offset; one beyond the cut (an older segment of the cut overlaps it) holds nothing before the cut; any other
/// ends at its length. Without an end cut, every segment is read to its length when listed: a snapshot.
/// </para>
/// </summary>
internal static class RangePlanner
{
    /// <summary>A segment to read: from <see cref="Start"/> (null: its head) to <see cref="End"/> (null: its length).</summary>
    public readonly record struct Planned(Contract.SegmentRange Segment, long? Start, long? End);

    /// <summary>
    /// The segments of <paramref name="segments"/> with data between <paramref name="from"/> (null: the stream's
    /// head) and <paramref name="to"/> (null: its tail), by segment id. Throws <see cref="ArgumentException"/> saying
    /// what is wrong with a cut: one that names a segment the stream does not have, leaves a routing key uncovered, or
    /// ends before it starts.
    /// </summary>
    public static List<Planned> Plan(string scope, string stream, Contract.SegmentList segments, IReadOnlyDictionary<long, long>? from, IReadOnlyDictionary<long, long>? to)
    {
        var byId = new Dictionary<long, Contract.SegmentRange>();
        foreach (var descriptor in segments.Segments)
        {
            byId[descriptor.Segment.SegmentId] = descriptor.Segment;
        }

        StreamCutRules.Validate(scope, stream, byId, from, "start");
        StreamCutRules.Validate(scope, stream, byId, to, "end");
        if (from is not null && to is not null)
        {
            CheckOrder(scope, stream, byId, from, to);
        }

        var planned = new List<Planned>();
        foreach (var segment in byId.Values.OrderBy(s => s.SegmentId))
        {
            long? start = null;
            if (from is not null)
            {
                if (from.TryGetValue(segment.SegmentId, out var startOffset))
                {
                    start = startOffset;
                }
                else if (StreamCutRules.IsBefore(segment, byId, from))
                {
                    continue;
                }
            }

            long? end = null;
            if (to is not null)
            {
                if (to.TryGetValue(segment.SegmentId, out var endOffset))
                {
                    end = endOffset;
                }
                else if (StreamCutRules.IsAfter(segment, byId, to))
                {
                    continue;
                }
            }

            if (start is { } s && end is { } e && s >= e)
            {
                // Both cuts put it at the same offset: nothing of it lies between them.
                continue;
            }

            planned.Add(new Planned(segment, start, end));
        }

        return planned;
    }

    /// <summary>The start cut must not lie past the end cut anywhere.</summary>
    private static void CheckOrder(string scope, string stream, Dictionary<long, Contract.SegmentRange> byId, IReadOnlyDictionary<long, long> from, IReadOnlyDictionary<long, long> to)
    {
        foreach (var (id, offset) in from)
        {
            if (to.TryGetValue(id, out var end))
            {
                if (offset > end)
                {
                    throw new ArgumentException($"The start cut of {scope}/{stream} is past its end cut in segment {byId[id].Segment} ({offset} > {end}).");
                }
            }
            else if (StreamCutRules.IsAfter(byId[id], byId, to))
            {
                throw new ArgumentException($"The start cut of {scope}/{stream} is past its end cut: its segment {byId[id].Segment} comes after the end cut.");
            }
        }
    }
}
