using Streams.Contracts.Controller;

namespace Streams.Common.Contracts;

/// <summary>
/// What a stream cut means, for everyone who reads between cuts (the controller's reader groups, the client's batch
/// reads). Pure.
/// <para>
/// A cut maps segment ids to offsets and covers the whole key space [0, 1). Each epoch's segments tile the key space,
/// so a segment that overlaps a segment of the cut in key range is either that segment, an older one (an ancestor:
/// everything in it comes before the cut) or a newer one (a descendant: everything in it comes after the cut).
/// Offsets must be event boundaries, as `stream cut` and checkpoints give them.
/// </para>
/// </summary>
public static class StreamCutRules
{
    /// <summary>
    /// Checks that <paramref name="cut"/> names only segments of <paramref name="segments"/>, at offsets of 0 or more,
    /// and covers every routing key; throws <see cref="ArgumentException"/> that says what is wrong otherwise, naming
    /// the cut as <paramref name="which"/> ("start", "end"). A null cut passes.
    /// </summary>
    public static void Validate(string scope, string stream, IReadOnlyDictionary<long, SegmentRange> segments, IReadOnlyDictionary<long, long>? cut, string which)
    {
        if (cut is null)
        {
            return;
        }

        if (cut.Count == 0)
        {
            throw new ArgumentException($"The {which} cut of {scope}/{stream} names no segment: leave it out, or give segment-id=offset pairs (`streams stream cut`).");
        }

        foreach (var (id, offset) in cut)
        {
            if (!segments.ContainsKey(id))
            {
                throw new ArgumentException($"The {which} cut of {scope}/{stream} names segment id {id}, which the stream does not have (any more).");
            }

            if (offset < 0)
            {
                throw new ArgumentException($"The {which} cut of {scope}/{stream} has a negative offset for segment id {id}.");
            }
        }

        // Together the segments cover [0, 1) without a gap.
        var covered = 0.0;
        foreach (var range in cut.Keys.Select(id => segments[id]).OrderBy(r => r.KeyStart))
        {
            if (range.KeyStart > covered)
            {
                break;
            }

            covered = Math.Max(covered, range.KeyEnd);
        }

        if (covered < 1.0)
        {
            throw new ArgumentException($"The {which} cut of {scope}/{stream} does not cover every routing key: no segment of it covers key {covered:0.####}.");
        }
    }

    /// <summary>
    /// Whether <paramref name="segment"/>, not named in <paramref name="cut"/>, lies wholly after it: an older segment
    /// of the cut overlaps its key range. An end cut reads nothing of such a segment.
    /// </summary>
    public static bool IsAfter(SegmentRange segment, IReadOnlyDictionary<long, SegmentRange> segments, IReadOnlyDictionary<long, long> cut) =>
        cut.Keys.Any(id => id != segment.SegmentId && segments.TryGetValue(id, out var named) && Overlap(named, segment) && Epoch(id) < Epoch(segment.SegmentId));

    /// <summary>
    /// Whether <paramref name="segment"/>, not named in <paramref name="cut"/>, lies wholly before it: a newer segment
    /// of the cut overlaps its key range. A start cut reads nothing of such a segment.
    /// </summary>
    public static bool IsBefore(SegmentRange segment, IReadOnlyDictionary<long, SegmentRange> segments, IReadOnlyDictionary<long, long> cut) =>
        cut.Keys.Any(id => id != segment.SegmentId && segments.TryGetValue(id, out var named) && Overlap(named, segment) && Epoch(id) > Epoch(segment.SegmentId));

    /// <summary>Whether two segments' routing-key ranges overlap.</summary>
    public static bool Overlap(SegmentRange a, SegmentRange b) => a.KeyStart < b.KeyEnd && b.KeyStart < a.KeyEnd;

    /// <summary>The epoch that created a segment: the high half of its id.</summary>
    public static long Epoch(long segmentId) => segmentId >> 32;
}
