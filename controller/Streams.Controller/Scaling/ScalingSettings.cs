using System.Globalization;

namespace Streams.Controller.Scaling;

/// <summary>
/// How the leading controller decides to split and merge (configuration section "Scaling"; docs/scaling.md,
/// "Settings"). The defaults are Pravega's production values; tests and demos use seconds. The window lengths and the
/// report interval are the segment stores' settings of the same keys: the controller reads them to know what the
/// reported rates mean and when a report is stale.
/// </summary>
public sealed record ScalingSettings
{
    /// <summary>Number of rate windows a load report carries (2, 5, 10 and 20 minutes by default).</summary>
    public const int WindowCount = 4;

    /// <summary>How often the leading controller evaluates every stream with a rate policy: 10 s.</summary>
    public long EvaluateIntervalMs { get; init; } = 10_000;

    /// <summary>
    /// No split of a segment that a scale created less than this long ago: 10 min, Pravega's cooldown, long enough for
    /// a split's successors to show their own rates before they split again.
    /// </summary>
    public long SplitCooldownMs { get; init; } = 600_000;

    /// <summary>No merge of a segment created less than this long ago: 20 min, the longest window, so a merge is judged on a full window of the segment's own traffic.</summary>
    public long MergeCooldownMs { get; init; } = 1_200_000;

    /// <summary>The segment stores' rate windows, shortest first (Scaling:WindowsMs): 2, 5, 10 and 20 minutes.</summary>
    public IReadOnlyList<long> WindowsMs { get; init; } = [120_000, 300_000, 600_000, 1_200_000];

    /// <summary>The segment stores' longest gap between two reports of a segment (Scaling:ReportIntervalMs): 2 min.</summary>
    public long ReportIntervalMs { get; init; } = 120_000;

    /// <summary>
    /// A report older than this many report intervals is no evidence: the segment is left alone (its store may be
    /// down, or the report lost) rather than merged away as silent.
    /// </summary>
    public const int FreshReportIntervals = 3;

    /// <summary>A report is fresh for this long after it arrived.</summary>
    public long FreshnessMs => FreshReportIntervals * ReportIntervalMs;

    public void Validate()
    {
        foreach (var (name, value) in new[] { ("EvaluateIntervalMs", EvaluateIntervalMs), ("SplitCooldownMs", SplitCooldownMs), ("MergeCooldownMs", MergeCooldownMs), ("ReportIntervalMs", ReportIntervalMs) })
        {
            if (value < (name.EndsWith("CooldownMs", StringComparison.Ordinal) ? 0 : 1))
            {
                throw new ArgumentException($"Scaling:{name} must be {(name.EndsWith("CooldownMs", StringComparison.Ordinal) ? "0 or more" : "positive")} (is {value.ToString(CultureInfo.InvariantCulture)}).");
            }
        }

        if (WindowsMs.Count != WindowCount || WindowsMs.Any(w => w <= 0) || WindowsMs.Zip(WindowsMs.Skip(1)).Any(p => p.First >= p.Second))
        {
            throw new ArgumentException($"Scaling:WindowsMs must be {WindowCount} increasing positive durations in milliseconds, e.g. 120000,300000,600000,1200000 (is {string.Join(",", WindowsMs)}).");
        }
    }
}
