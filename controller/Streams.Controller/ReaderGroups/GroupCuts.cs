using Streams.Common.Contracts;
using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>
/// Where a group starts and ends reading a stream, from its start and end cuts and the stream's segments (every
/// epoch still there). Pure.
/// <para>
/// A cut maps segment ids to offsets and covers the whole key space [0, 1) (<see cref="StreamCutRules"/>). A cut the
/// group took itself (a checkpoint) may hold a segment and, at offset 0, a successor that waits for it; a segment of a
/// cut with an older overlapping segment in the same cut therefore starts as Future, waiting for it. A segment is
/// beyond an end cut when an older segment of the cut overlaps its key range: it is not read, and neither is anything
/// after it. Offsets must be event boundaries, as `stream cut` and checkpoints give them.
/// </para>
/// </summary>
public static class GroupCuts
{
    /// <summary>
    /// The segments a group reads <paramref name="scope"/>/<paramref name="stream"/> from: the start cut's (or, without
    /// one, the earliest still there), less those at or beyond the end cut. Throws <see cref="ArgumentException"/> with
    /// a message that says what is wrong with a cut.
    /// </summary>
    public static List<GroupSegmentRecord> Start(string scope, string stream, SegmentList segments, IReadOnlyDictionary<long, long>? start, IReadOnlyDictionary<long, long>? end)
    {
        var byId = Ranges(segments);
        StreamCutRules.Validate(scope, stream, byId, start, "start");
        StreamCutRules.Validate(scope, stream, byId, end, "end");
        var startIds = start?.Keys.ToHashSet() ?? [.. segments.Segments.Where(s => !s.PredecessorIds.Any(byId.ContainsKey)).Select(s => s.Segment.SegmentId)];

        var result = new List<GroupSegmentRecord>();
        foreach (var id in startIds.Order())
        {
            var range = byId[id];
            var offset = start?.GetValueOrDefault(id) ?? 0;
            var endOffset = end is not null && end.TryGetValue(id, out var e) ? e : -1;
            if (endOffset >= 0 && offset > endOffset)
            {
                throw new ArgumentException($"The start cut of {scope}/{stream} is past its end cut in segment {range.Segment} ({offset} > {endOffset}).");
            }

            if ((endOffset >= 0 && offset == endOffset) || (end is not null && endOffset < 0 && StreamCutRules.IsAfter(range, byId, end)))
            {
                // Nothing of it to read: at its end cut already, or after it.
                continue;
            }

            var pending = startIds.Where(other => other != id && StreamCutRules.Overlap(byId[other], range) && StreamCutRules.Epoch(other) < StreamCutRules.Epoch(id)).ToList();
            result.Add(new GroupSegmentRecord
            {
                Scope = scope, Stream = stream, SegmentId = id, Name = range.Segment, KeyStart = range.KeyStart, KeyEnd = range.KeyEnd,
                CommittedOffset = offset, EndOffset = endOffset,
                State = pending.Count > 0 ? GroupSegmentState.Future : GroupSegmentState.Unassigned, Pending = pending,
            });
        }

        // A waiting segment whose every predecessor in the cut was dropped (at its end) has nothing to wait for.
        var kept = result.Select(s => s.SegmentId).ToHashSet();
        foreach (var segment in result.Where(s => s.State == GroupSegmentState.Future))
        {
            segment.Pending.RemoveAll(p => !kept.Contains(p));
            if (segment.Pending.Count == 0)
            {
                segment.State = GroupSegmentState.Unassigned;
            }
        }

        return result;
    }

    /// <summary>
    /// Whether a successor is read, and to where: null if it is at or beyond the end cut, otherwise its end offset
    /// (-1: to its end).
    /// </summary>
    public static long? EndOf(SegmentRange successor, IReadOnlyDictionary<long, SegmentRange> segments, IReadOnlyDictionary<long, long>? end)
    {
        if (end is null)
        {
            return -1;
        }

        if (end.TryGetValue(successor.SegmentId, out var offset))
        {
            return offset > 0 ? offset : null;
        }

        return StreamCutRules.IsAfter(successor, segments, end) ? null : -1;
    }

    /// <summary>
    /// Whether everything before cut <paramref name="earlier"/> is also before cut <paramref name="later"/>: wherever
    /// their segments overlap, <paramref name="later"/> has the same segment at an offset at least as high, or a newer
    /// segment. False for an empty <paramref name="later"/> or a segment not in <paramref name="segments"/>.
    /// </summary>
    public static bool IsAtOrBefore(IReadOnlyDictionary<long, long> earlier, IReadOnlyDictionary<long, long> later, IReadOnlyDictionary<long, SegmentRange> segments)
    {
        if (later.Count == 0)
        {
            return false;
        }

        foreach (var (id, offset) in earlier)
        {
            if (!segments.TryGetValue(id, out var range))
            {
                return false;
            }

            foreach (var (laterId, laterOffset) in later)
            {
                if (!segments.TryGetValue(laterId, out var laterRange))
                {
                    return false;
                }

                if (!StreamCutRules.Overlap(range, laterRange))
                {
                    continue;
                }

                if (laterId == id ? laterOffset < offset : StreamCutRules.Epoch(laterId) < StreamCutRules.Epoch(id))
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>The segments of a stream by id, for <see cref="EndOf"/>.</summary>
    public static Dictionary<long, SegmentRange> Ranges(SegmentList segments) => segments.Segments.ToDictionary(s => s.Segment.SegmentId, s => s.Segment);
}
