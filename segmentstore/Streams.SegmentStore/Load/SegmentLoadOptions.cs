using System.Globalization;

namespace Streams.SegmentStore.Load;

/// <summary>
/// How a segment store measures and reports load (configuration section "Scaling", shared with the controller's
/// scaling settings; docs/scaling.md). The keys carry their unit (Ms) because the stream contracts name them so
/// (controller.proto's Scaling:WindowsMs and Scaling:ReportIntervalMs).
/// </summary>
public sealed record SegmentLoadOptions
{
    /// <summary>
    /// Milliseconds between ticks of a container's load timer, which folds each segment's counts into its averages and
    /// decides what to report. 5000 is Pravega's tick: fine enough for a 2-minute window (24 samples), cheap for
    /// thousands of segments. Tests use tens of milliseconds.
    /// </summary>
    public int TickMs { get; init; } = 5000;

    /// <summary>
    /// The averaging windows in milliseconds, shortest first, comma-separated: 2, 5, 10 and 20 minutes by default
    /// (Pravega's; the controller's split and merge rules read them in this order).
    /// </summary>
    public string WindowsMs { get; init; } = "120000,300000,600000,1200000";

    /// <summary>
    /// Every segment's load is reported at least this often, changed or not (a change of ±25% is reported at the next
    /// tick). 120000 (2 minutes, Pravega's) is the production default; tests use a second or two.
    /// </summary>
    public int ReportIntervalMs { get; init; } = 120000;

    /// <summary><see cref="WindowsMs"/> parsed (valid after <see cref="Validate"/>).</summary>
    public double[] Windows() =>
        [.. WindowsMs.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(w => double.TryParse(w, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) ? ms : -1)];

    /// <summary>Checks the settings; throws with a message naming the setting to fix.</summary>
    public void Validate()
    {
        if (TickMs is < 10 or > 600_000)
        {
            throw new ArgumentException($"Scaling:TickMs must be between 10 and 600000 milliseconds (is {TickMs}).");
        }

        var windows = Windows();
        if (windows.Length is < 1 or > SegmentLoadMeter.MaxWindows || windows.Any(w => w < TickMs))
        {
            throw new ArgumentException(
                $"Scaling:WindowsMs must list 1 to {SegmentLoadMeter.MaxWindows} windows in whole milliseconds, each at least Scaling:TickMs ({TickMs}), " +
                $"comma-separated, e.g. \"120000,300000,600000,1200000\" (is \"{WindowsMs}\").");
        }

        for (var i = 1; i < windows.Length; i++)
        {
            if (windows[i] < windows[i - 1])
            {
                throw new ArgumentException($"Scaling:WindowsMs must list the shortest window first (is \"{WindowsMs}\").");
            }
        }

        if (ReportIntervalMs < TickMs)
        {
            throw new ArgumentException($"Scaling:ReportIntervalMs must be at least Scaling:TickMs ({TickMs}) (is {ReportIntervalMs}).");
        }
    }
}
