using System.Diagnostics;
using HdrHistogram;

namespace Streams.Cli.Bench;

/// <summary>
/// Latencies of one run in microseconds: one HdrHistogram <see cref="Recorder"/> per writer, written from that writer's
/// ack callbacks, which may run on several threads at once (one per segment connection). Recording is wait-free (atomic
/// increments, no lock); <see cref="Collect"/> moves what was recorded into one total histogram, from one thread.
/// </summary>
internal sealed class LatencyRecording
{
    /// <summary>One hour: a latency past it is recorded as one hour (HdrHistogram rejects values above its range).</summary>
    internal const long HighestMicros = 3_600_000_000;

    /// <summary>Three significant digits: every percentile is within 0.1% of the value recorded.</summary>
    internal const int Precision = 3;

    private static readonly double MicrosPerTick = 1e6 / Stopwatch.Frequency;

    private readonly Recorder[] _recorders;
    private readonly HistogramBase?[] _intervals;
    private readonly LongHistogram _total = new(HighestMicros, Precision);

    public LatencyRecording(int writers)
    {
        _recorders = new Recorder[writers];
        _intervals = new HistogramBase?[writers];
        for (var i = 0; i < writers; i++)
        {
            _recorders[i] = HistogramFactory.With64BitBucketSize()
                .WithValuesUpTo(HighestMicros)
                .WithPrecisionOf(Precision)
                .WithThreadSafeWrites()
                .WithThreadSafeReads()
                .Create();
        }
    }

    /// <summary>Records the time from <paramref name="fromTimestamp"/> to <paramref name="toTimestamp"/> (Stopwatch ticks) for one writer.</summary>
    public void Record(int writer, long fromTimestamp, long toTimestamp) =>
        _recorders[writer].RecordValue(Math.Clamp((long)((toTimestamp - fromTimestamp) * MicrosPerTick), 0, HighestMicros));

    /// <summary>Adds what every writer recorded since the last call to the total, and returns the total. Not thread-safe: one caller.</summary>
    public HistogramBase Collect()
    {
        for (var i = 0; i < _recorders.Length; i++)
        {
            // The recorder hands back its own histogram for reuse, so a second of progress allocates nothing.
            var interval = _recorders[i].GetIntervalHistogram(_intervals[i]);
            _total.Add(interval);
            _intervals[i] = interval;
        }

        return _total;
    }
}
