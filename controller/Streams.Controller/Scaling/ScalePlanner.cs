using System.Globalization;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// The scaling policy as one pure function of a stream's record, the latest fresh load of its segments and the time
/// (docs/scaling.md, "Deciding"). It never reads a clock or a store, so every rule is a table test.
/// <para>
/// Why it cannot flap: a split needs a rate above the target (×5 over 2 min, ×2 over 5 min, ×1 over 10 min, each only
/// once the segment has been measured for longer than that window); a merge needs the two neighbours' combined rates at
/// most the target over every short window and at most half of it over the 20-min window. The merged segment starts
/// with the sum of its predecessors' rates, so it meets no split condition, and a steady load between ½ and 1 target
/// per segment makes neither. Cooldowns keep successors from scaling again before their own rates say so.
/// </para>
/// <para>
/// What it never does: decide on a segment without a fresh report (no evidence, no decision); split a segment whose
/// load sits in one routing-key bucket (a hot key: more segments would not spread it); cut a range narrower than
/// 2^-32; go above the policy's maximum or below its minimum segment count; touch a stream with a scale under way.
/// </para>
/// </summary>
internal static class ScalePlanner
{
    /// <summary>Split factors over the 2, 5 and 10-min windows (Pravega's): short bursts must be larger to count.</summary>
    internal static readonly double[] SplitFactors = [5, 2, 1];

    /// <summary>A pair merges when its combined 20-min rate is at most this share of the target.</summary>
    internal const double MergeShare = 0.5;

    /// <summary>A bucket with more than this share of a segment's bytes is a hot key.</summary>
    internal const double HotKeyShare = 0.8;

    /// <summary>The narrowest range a split makes (P#3173: splitting to floating-point width gains nothing).</summary>
    internal const double MinWidth = 1.0 / 4294967296.0;

    /// <summary>Buckets of a segment's key histogram (SegmentLoad.key_buckets).</summary>
    internal const int Buckets = 32;

    private const int SplitWindows = 3;
    private const int MergeWindow = 3;

    /// <summary>The stream's plan for now, with <see cref="ScaleDecision.HotKeys"/> it would not split.</summary>
    public static ScaleDecision Decide(StreamRecord record, IReadOnlyDictionary<long, SegmentLoad> loads, long nowUnixMs, ScalingSettings settings)
    {
        var policy = record.Policy;
        if (policy.Kind == ScalingKind.Fixed || policy.Target < 1 || record.State != StreamRecordState.Active || record.Transition is not null)
        {
            return ScaleDecision.None;
        }

        var segments = record.ActiveSegments.OrderBy(s => s.KeyStart).ToList();
        var runs = new List<Run>();
        var hotKeys = new List<HotKey>();
        var splitting = new HashSet<long>();
        var headroom = policy.MaxSegments - segments.Count;
        var candidates = new List<(SegmentRecord Segment, SegmentLoad Load, double MaxRate, string Why)>();
        foreach (var segment in segments)
        {
            if (loads.TryGetValue(IdOf(segment), out var load) && Rates(load, policy.Kind) is { } rates
                && SplitTrigger(rates, load.AgeMs, policy, settings) is { } trigger
                && !(CreatedByScaleAt(record, segment) is { } at && nowUnixMs - at < settings.SplitCooldownMs))
            {
                candidates.Add((segment, load, trigger.MaxRate, trigger.Why));
            }
        }

        foreach (var (segment, load, maxRate, why) in candidates.OrderByDescending(c => c.MaxRate))
        {
            if (HotKeyOf(segment, load.KeyBuckets) is { } hot)
            {
                hotKeys.Add(hot);
                continue;
            }

            var pieces = Math.Min(Math.Clamp((int)Math.Floor(maxRate / policy.Target), 2, Math.Max(2, policy.ScaleFactor)), headroom + 1);
            if (pieces < 2)
            {
                continue; // at the maximum segment count
            }

            var ranges = SplitRanges(segment, load.KeyBuckets, pieces);
            if (ranges.Count < 2)
            {
                hotKeys.Add(new HotKey { SegmentId = IdOf(segment), KeyStart = segment.KeyStart, KeyEnd = segment.KeyEnd, Share = 1 });
                continue; // too narrow to cut
            }

            headroom -= ranges.Count - 1;
            splitting.Add(IdOf(segment));
            runs.Add(new Run([segment], ranges, $"split {Short(segment)} in {ranges.Count}: {why}", IsMerge: false));
        }

        runs.AddRange(Merges(record, segments, loads, splitting, nowUnixMs, settings));
        if (runs.Count == 0)
        {
            return new ScaleDecision(null, hotKeys);
        }

        runs.Sort((a, b) => a.Seal[0].KeyStart.CompareTo(b.Seal[0].KeyStart));
        var plan = new ScalePlan(
            [.. runs.SelectMany(r => r.Seal.Select(IdOf))],
            [.. runs.SelectMany(r => r.Ranges)],
            string.Join("; ", runs.Select(r => r.Reason)),
            runs.Count(r => !r.IsMerge),
            runs.Count(r => r.IsMerge));
        return new ScaleDecision(plan, hotKeys);
    }

    /// <summary>Greedy from the coldest adjacent pair; each segment in at most one merge; never below the minimum.</summary>
    private static IEnumerable<Run> Merges(StreamRecord record, List<SegmentRecord> segments, IReadOnlyDictionary<long, SegmentLoad> loads, HashSet<long> splitting, long nowUnixMs, ScalingSettings settings)
    {
        var policy = record.Policy;
        var unit = Unit(policy.Kind);
        var pairs = new List<(int Index, double Rate)>();
        for (var i = 0; i + 1 < segments.Count; i++)
        {
            var (a, b) = (segments[i], segments[i + 1]);
            if (a.KeyEnd != b.KeyStart || !Mergeable(record, a, loads, splitting, nowUnixMs, settings, out var ra) || !Mergeable(record, b, loads, splitting, nowUnixMs, settings, out var rb))
            {
                continue;
            }

            var combined = ra.Zip(rb, (x, y) => x + y).ToArray();
            if (combined[MergeWindow] <= MergeShare * policy.Target && combined.Take(SplitWindows).All(r => r <= policy.Target))
            {
                pairs.Add((i, combined[MergeWindow]));
            }
        }

        var used = new HashSet<int>();
        var count = segments.Count;
        foreach (var (i, rate) in pairs.OrderBy(p => p.Rate).ThenBy(p => p.Index))
        {
            if (count - 1 < policy.MinSegments)
            {
                yield break;
            }

            if (used.Contains(i) || used.Contains(i + 1))
            {
                continue;
            }

            used.Add(i);
            used.Add(i + 1);
            count--;
            var (a, b) = (segments[i], segments[i + 1]);
            yield return new Run([a, b], [new KeyRangeRecord(a.KeyStart, b.KeyEnd)],
                $"merge {Short(a)} and {Short(b)}: 20-min rate {Format(rate)}{unit} <= {Format(MergeShare * policy.Target)}{unit}", IsMerge: true);
        }
    }

    private static bool Mergeable(StreamRecord record, SegmentRecord segment, IReadOnlyDictionary<long, SegmentLoad> loads, HashSet<long> splitting, long nowUnixMs, ScalingSettings settings, out double[] rates)
    {
        rates = [];
        if (splitting.Contains(IdOf(segment)) || !loads.TryGetValue(IdOf(segment), out var load) || Rates(load, record.Policy.Kind) is not { } measured
            || load.AgeMs <= settings.WindowsMs[MergeWindow] || nowUnixMs - CreatedAt(record, segment) < settings.MergeCooldownMs)
        {
            return false;
        }

        rates = measured;
        return true;
    }

    /// <summary>The first split condition the rates meet (and the largest of the three rates), or null.</summary>
    private static (double MaxRate, string Why)? SplitTrigger(double[] rates, long ageMs, ScalingPolicyRecord policy, ScalingSettings settings)
    {
        string? why = null;
        for (var w = 0; w < SplitWindows && why is null; w++)
        {
            if (ageMs > settings.WindowsMs[w] && rates[w] > SplitFactors[w] * policy.Target)
            {
                var unit = Unit(policy.Kind);
                why = $"{Minutes(settings.WindowsMs[w])} rate {Format(rates[w])}{unit} > {Format(SplitFactors[w])} x {Format(policy.Target)}{unit}";
            }
        }

        return why is null ? null : (rates.Take(SplitWindows).Max(), why);
    }

    /// <summary>The bucket of a segment carrying more than <see cref="HotKeyShare"/> of its bytes, or null.</summary>
    internal static HotKey? HotKeyOf(SegmentRecord segment, IReadOnlyList<double> buckets)
    {
        if (buckets.Count != Buckets || !(buckets.Sum() is var total && total > 0))
        {
            return null;
        }

        var top = 0;
        for (var i = 1; i < Buckets; i++)
        {
            top = buckets[i] > buckets[top] ? i : top;
        }

        var share = buckets[top] / total;
        return share > HotKeyShare
            ? new HotKey { SegmentId = IdOf(segment), KeyStart = Edge(segment, top), KeyEnd = Edge(segment, top + 1), Share = share }
            : null;
    }

    /// <summary>
    /// Up to <paramref name="pieces"/> ranges tiling the segment, cut at the bucket edges nearest the load's
    /// 1/pieces quantiles (equal widths without a histogram); cuts that would leave a piece narrower than 2^-32 are
    /// dropped, and cuts that fall on the same edge make one.
    /// </summary>
    internal static List<KeyRangeRecord> SplitRanges(SegmentRecord segment, IReadOnlyList<double> buckets, int pieces)
    {
        var cuts = new SortedSet<double>();
        var total = buckets.Count == Buckets ? buckets.Sum() : 0;
        if (total > 0)
        {
            var cumulative = new double[Buckets + 1];
            for (var e = 1; e <= Buckets; e++)
            {
                cumulative[e] = cumulative[e - 1] + (buckets[e - 1] / total);
            }

            for (var j = 1; j < pieces; j++)
            {
                var quantile = (double)j / pieces;
                var best = 1;
                for (var e = 2; e < Buckets; e++)
                {
                    best = Math.Abs(cumulative[e] - quantile) < Math.Abs(cumulative[best] - quantile) ? e : best;
                }

                cuts.Add(Edge(segment, best));
            }
        }
        else
        {
            for (var j = 1; j < pieces; j++)
            {
                cuts.Add(segment.KeyStart + ((segment.KeyEnd - segment.KeyStart) * j / pieces));
            }
        }

        var ranges = new List<KeyRangeRecord>(pieces);
        var start = segment.KeyStart;
        foreach (var cut in cuts)
        {
            if (cut - start >= MinWidth && segment.KeyEnd - cut >= MinWidth)
            {
                ranges.Add(new KeyRangeRecord(start, cut));
                start = cut;
            }
        }

        ranges.Add(new KeyRangeRecord(start, segment.KeyEnd));
        return ranges;
    }

    /// <summary>The policy's rate per window (events/s, or KiB/s), or null for a report without every window or with nonsense in it.</summary>
    internal static double[]? Rates(SegmentLoad load, ScalingKind kind)
    {
        var source = kind == ScalingKind.EventsPerSecond ? load.EventRates : load.ByteRates;
        if (source.Count < ScalingSettings.WindowCount)
        {
            return null;
        }

        var rates = new double[ScalingSettings.WindowCount];
        for (var w = 0; w < rates.Length; w++)
        {
            var rate = kind == ScalingKind.EventsPerSecond ? source[w] : source[w] / 1024;
            if (!double.IsFinite(rate) || rate < 0)
            {
                return null;
            }

            rates[w] = rate;
        }

        return rates;
    }

    /// <summary>When a scale created the segment; null for the stream's first segments (and lineages older than the history kept).</summary>
    private static long? CreatedByScaleAt(StreamRecord record, SegmentRecord segment) =>
        segment.Epoch == 0 ? null : record.History?.FirstOrDefault(h => h.Epoch == segment.Epoch)?.TimeUnixMs;

    private static long CreatedAt(StreamRecord record, SegmentRecord segment) => CreatedByScaleAt(record, segment) ?? record.CreatedAtUnixMs;

    private static double Edge(SegmentRecord segment, int bucket) =>
        bucket >= Buckets ? segment.KeyEnd : segment.KeyStart + ((segment.KeyEnd - segment.KeyStart) * bucket / Buckets);

    internal static long IdOf(SegmentRecord segment) => SegmentName.ComposeId(segment.Epoch, segment.Number);

    private static string Short(SegmentRecord segment) => $"{segment.Number}.#epoch.{segment.Epoch}";

    private static string Unit(ScalingKind kind) => kind == ScalingKind.EventsPerSecond ? "/s" : " KiB/s";

    private static string Minutes(long windowMs) =>
        windowMs % 60_000 == 0 ? $"{windowMs / 60_000}-min" : $"{Format(windowMs / 1000.0)}-s";

    private static string Format(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private sealed record Run(IReadOnlyList<SegmentRecord> Seal, IReadOnlyList<KeyRangeRecord> Ranges, string Reason, bool IsMerge);
}
