using System.Globalization;
using Grpc.Core;
using Streams.Common.Naming;

namespace Streams.Controller.Streams;

/// <summary>
/// Checks a scale request against a stream's current epoch: the segments to seal are distinct segments of that epoch,
/// grouped into runs of adjacent segments; the new ranges tile every run exactly (no gap, no overlap, no range across
/// two runs), each at least <see cref="MinWidth"/> wide; and the stream stays within its segment bounds. Refusals are
/// gRPC statuses whose message says what to change: INVALID_ARGUMENT for a request that could never be right,
/// FAILED_PRECONDITION for one the stream's current state rules out.
/// </summary>
internal static class ScaleRequestCheck
{
    /// <summary>
    /// 2^-32: the narrowest segment. A routing key's point has 53 bits, so narrower ranges still separate keys, but a
    /// single hot key can never be split off anyway, and splitting towards float precision gains nothing.
    /// </summary>
    public const double MinWidth = 1.0 / 4294967296.0;

    /// <summary>Returns the new ranges sorted by start, or throws an <see cref="RpcException"/> saying what is wrong.</summary>
    public static IReadOnlyList<KeyRangeRecord> Check(
        StreamRecord record,
        IReadOnlyList<long> sealSegmentIds,
        IReadOnlyList<KeyRangeRecord> newRanges,
        bool oneRun,
        int minSegments,
        int maxSegments)
    {
        var name = $"{record.Scope}/{record.Stream}";
        if (sealSegmentIds.Count == 0)
        {
            throw Invalid("A scale must name at least one segment to seal (seal_segment_ids is empty).");
        }

        if (newRanges.Count == 0)
        {
            throw Invalid("A scale must give the successors' key ranges (new_ranges is empty).");
        }

        var sealing = new List<SegmentRecord>(sealSegmentIds.Count);
        var seen = new HashSet<long>();
        foreach (var id in sealSegmentIds)
        {
            if (!seen.Add(id))
            {
                throw Invalid($"Segment id {id} is named twice in seal_segment_ids; name each segment once.");
            }

            var segment = record.ActiveSegments.FirstOrDefault(s => SegmentName.ComposeId(s.Epoch, s.Number) == id);
            if (segment is null)
            {
                var named = SegmentName.FromId(record.Scope, record.Stream, id);
                var earlier = record.FindSegment(named.Number, named.Epoch);
                var current = string.Join(", ", record.ActiveSegments.Select(s => SegmentName.ComposeId(s.Epoch, s.Number).ToString(CultureInfo.InvariantCulture)));
                throw new RpcException(new Status(StatusCode.FailedPrecondition, earlier is not null
                    ? $"Segment {named} (id {id}) was already replaced in epoch {earlier.SealedEpoch}; stream {name} is at epoch {record.Epoch} with segment ids {current}. Describe the stream and scale its current segments."
                    : $"Segment id {id} (epoch {named.Epoch}, number {named.Number}) is not a segment of stream {name}'s current epoch {record.Epoch}, whose segment ids are {current}."));
            }

            sealing.Add(segment);
        }

        sealing.Sort((a, b) => a.KeyStart.CompareTo(b.KeyStart));
        var runs = new List<KeyRangeRecord>();
        foreach (var segment in sealing)
        {
            if (runs.Count > 0 && runs[^1].End == segment.KeyStart)
            {
                runs[^1] = runs[^1] with { End = segment.KeyEnd };
            }
            else
            {
                runs.Add(new KeyRangeRecord(segment.KeyStart, segment.KeyEnd));
            }
        }

        if (oneRun && runs.Count > 1)
        {
            throw Invalid($"The segments to seal are not adjacent: they cover {Describe(runs)}. Seal segments whose key ranges touch (one run), or scale each run separately.");
        }

        foreach (var range in newRanges)
        {
            if (!double.IsFinite(range.Start) || !double.IsFinite(range.End) || range.Start < 0 || range.End > 1 || range.Start >= range.End)
            {
                throw Invalid($"The new range {Describe(range)} is not a key range: it needs 0 <= start < end <= 1.");
            }

            if (range.End - range.Start < MinWidth)
            {
                throw Invalid($"The new range {Describe(range)} is narrower than 2^-32, the narrowest segment; split into fewer pieces.");
            }
        }

        var sorted = newRanges.OrderBy(r => r.Start).ToList();
        var next = 0;
        foreach (var run in runs)
        {
            var at = run.Start;
            if (next >= sorted.Count || sorted[next].Start != at)
            {
                throw NotTiling(runs, sorted, $"no new range starts at {Format(at)}");
            }

            while (at < run.End)
            {
                if (next >= sorted.Count || sorted[next].Start != at)
                {
                    throw NotTiling(runs, sorted, next < sorted.Count && sorted[next].Start < at
                        ? $"{Describe(sorted[next])} overlaps the range before it"
                        : $"nothing covers [{Format(at)}, …)");
                }

                at = sorted[next].End;
                next++;
            }

            if (at != run.End)
            {
                throw NotTiling(runs, sorted, $"{Describe(sorted[next - 1])} reaches past the sealed range's end {Format(run.End)}");
            }
        }

        if (next < sorted.Count)
        {
            throw NotTiling(runs, sorted, $"{Describe(sorted[next])} is outside the sealed segments' ranges");
        }

        var after = record.ActiveSegments.Count - sealing.Count + sorted.Count;
        if (after > maxSegments)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The scale would give stream {name} {after} segments, more than its maximum of {maxSegments}. Split into fewer pieces, merge segments first, or raise the policy's maximum (--max-segments)."));
        }

        if (after < minSegments)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The scale would leave stream {name} {after} segment(s), fewer than its minimum of {minSegments}. Merge fewer segments, or lower the policy's minimum (--min-segments)."));
        }

        return sorted;
    }

    private static RpcException NotTiling(List<KeyRangeRecord> runs, List<KeyRangeRecord> ranges, string why) =>
        Invalid($"The new ranges {string.Join(" ", ranges.Select(Describe))} must tile exactly the sealed segments' {Describe(runs)}: {why}.");

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    private static string Describe(List<KeyRangeRecord> runs) => string.Join(" ∪ ", runs.Select(Describe));

    private static string Describe(KeyRangeRecord range) => $"[{Format(range.Start)}, {Format(range.End)})";

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
