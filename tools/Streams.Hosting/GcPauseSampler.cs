using System.Diagnostics.Metrics;

namespace Streams.Hosting;

/// <summary>
/// This process's garbage-collection pauses as a histogram (<c>streams.process.gc.pause</c>, seconds), so /metrics gives
/// pause percentiles where the runtime's own metrics give only their sum.
/// <para>
/// How. Every <see cref="Interval"/> the sampler asks the runtime for its latest collection
/// (<see cref="GC.GetGCMemoryInfo(GCKind)"/>: its number and pause durations) and for the total paused time. A
/// collection that is the only one since the last look is recorded with its own pauses; when several happened in
/// between, the latest is recorded exactly and the others share the rest of the paused time equally, so the sum is
/// always exact. Not an in-process listener of the runtime's GC events: that one cost 10% of 10 KiB write throughput.
/// </para>
/// </summary>
internal sealed class GcPauseSampler : IDisposable
{
    public const string MeterName = "Streams.Process";

    /// <summary>Bucket bounds (seconds): from 50 µs, where a gen0 pause of a small heap lies, up to 2 s.</summary>
    public static readonly double[] Buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

    /// <summary>Often enough that most collections are seen one at a time; one look costs microseconds.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<double> Pause = Meter.CreateHistogram<double>(
        "streams.process.gc.pause", "s", "Garbage-collection pauses of this process (execution suspended to resumed).");

    private readonly Action<double> _record;
    private readonly Timer? _timer;
    private readonly object _lock = new();
    private long _lastIndex;
    private TimeSpan _lastTotal;

    public GcPauseSampler()
        : this(static seconds => Pause.Record(seconds))
    {
    }

    /// <param name="record">Receives each pause in seconds (tests count them).</param>
    /// <param name="timer">Whether to look every <see cref="Interval"/> (tests call <see cref="Sample"/> themselves).</param>
    internal GcPauseSampler(Action<double> record, bool timer = true)
    {
        _record = record;
        _lastIndex = GC.GetGCMemoryInfo(GCKind.Any).Index;
        _lastTotal = GC.GetTotalPauseDuration();
        _timer = timer ? new Timer(static state => ((GcPauseSampler)state!).Sample(), this, Interval, Interval) : null;
    }

    /// <summary>Records the pauses since the last look.</summary>
    internal void Sample()
    {
        lock (_lock)
        {
            var latest = GC.GetGCMemoryInfo(GCKind.Any);
            var total = GC.GetTotalPauseDuration();
            var collections = latest.Index - _lastIndex;
            if (collections <= 0)
            {
                return;
            }

            var own = TimeSpan.Zero;
            foreach (var pause in latest.PauseDurations)
            {
                own += pause;
            }

            var others = total - _lastTotal - own;
            for (var i = 1; i < collections; i++)
            {
                _record(Math.Max(0, others.TotalSeconds / (collections - 1)));
            }

            _record(own.TotalSeconds);
            (_lastIndex, _lastTotal) = (latest.Index, total);
        }
    }

    public void Dispose() => _timer?.Dispose();
}
