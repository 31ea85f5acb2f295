using Microsoft.Extensions.Logging;
using Streams.Contracts.Controller;

namespace Streams.SegmentStore.Load;

/// <summary>
/// Decides, at each tick of a container's load timer, which segments' load goes to the controller, and sends it
/// through an <see cref="ISegmentLoadSink"/>.
/// <para>
/// A segment is reported when any of its rates (either kind, any window) moved by more than
/// <see cref="SignificantChange"/> from what was last reported, ignoring moves smaller than
/// <see cref="MinEventRateChange"/> events/s and <see cref="MinByteRateChange"/> bytes/s (noise on a quiet segment);
/// and at least every Scaling:ReportIntervalMs, changed or not, so the controller knows its view is fresh. At most one
/// report is in flight per container: a tick that finds one still in flight sends nothing, and what it would have sent
/// goes with the next (the baseline moves only when the controller accepted). A report carries at most
/// <see cref="MaxSegmentsPerReport"/> segments; more go in several, one after the other.
/// </para>
/// </summary>
internal sealed class LoadReporter(ISegmentLoadSink sink, string store, long reportIntervalMs, ILogger logger)
{
    /// <summary>Pulsar's threshold (PIP-483): small enough to follow a ramp, large enough to stay quiet under steady load.</summary>
    public const double SignificantChange = 0.25;

    public const double MinEventRateChange = 1;

    public const double MinByteRateChange = 1024;

    /// <summary>A report of 1,000 segments is about 400 KiB: far below gRPC's 4 MiB message limit.</summary>
    public const int MaxSegmentsPerReport = 1000;

    private readonly Dictionary<string, Reported> _reported = new(StringComparer.Ordinal);
    private Task _inFlight = Task.CompletedTask;

    /// <summary>
    /// Compares the live segments' load with what was last reported and starts sending what is due; returns the send
    /// (for tests), or null when nothing was due or a report is still in flight.
    /// </summary>
    public Task? OnTick(IReadOnlyList<(string Segment, LoadState State)> segments, long nowMs)
    {
        if (!_inFlight.IsCompleted)
        {
            return null;
        }

        var live = new HashSet<string>(StringComparer.Ordinal);
        var due = new List<SegmentLoad>();
        foreach (var (segment, state) in segments)
        {
            live.Add(segment);
            if (!_reported.TryGetValue(segment, out var last) || nowMs - last.AtMs >= reportIntervalMs || Changed(last.State, state))
            {
                due.Add(ToLoad(segment, state));
            }
        }

        // Sealed and deleted segments stop reporting, and their baselines go.
        if (_reported.Count > live.Count)
        {
            foreach (var gone in _reported.Keys.Where(k => !live.Contains(k)).ToList())
            {
                _reported.Remove(gone);
            }
        }

        if (due.Count == 0)
        {
            return null;
        }

        var states = segments.ToDictionary(s => s.Segment, s => s.State, StringComparer.Ordinal);
        return _inFlight = SendAsync(due, states, nowMs);
    }

    /// <summary>Whether any rate moved significantly since <paramref name="last"/>.</summary>
    public static bool Changed(LoadState last, LoadState now)
    {
        if (last.EventRates.Length != now.EventRates.Length)
        {
            return true;
        }

        for (var i = 0; i < now.EventRates.Length; i++)
        {
            if (Moved(last.EventRates[i], now.EventRates[i], MinEventRateChange) || Moved(last.ByteRates[i], now.ByteRates[i], MinByteRateChange))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Moved(double before, double after, double floor)
    {
        var delta = Math.Abs(after - before);
        return delta >= floor && delta > SignificantChange * before;
    }

    private static SegmentLoad ToLoad(string segment, LoadState state)
    {
        var load = new SegmentLoad { Segment = segment, AgeMs = state.AgeMs };
        load.EventRates.Add(state.EventRates);
        load.ByteRates.Add(state.ByteRates);
        load.KeyBuckets.Add(state.KeyShares());
        return load;
    }

    private async Task SendAsync(List<SegmentLoad> due, Dictionary<string, LoadState> states, long nowMs)
    {
        for (var start = 0; start < due.Count; start += MaxSegmentsPerReport)
        {
            var report = new LoadReport { SegmentStore = store };
            report.Segments.Add(due.Skip(start).Take(MaxSegmentsPerReport));
            bool accepted;
            try
            {
                accepted = await sink.ReportAsync(report, CancellationToken.None);
            }
            catch (Exception e)
            {
                SegmentStoreMetrics.LoadReports.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
                logger.LogDebug(e, "A load report of {Segments} segment(s) failed; sending again at the next tick.", report.Segments.Count);
                return;
            }

            SegmentStoreMetrics.LoadReports.Add(1, new KeyValuePair<string, object?>("outcome", accepted ? "accepted" : "refused"));
            if (!accepted)
            {
                return; // not the leader: the sink looks for it again, and everything due is sent again next tick
            }

            foreach (var load in report.Segments)
            {
                _reported[load.Segment] = new Reported(states[load.Segment], nowMs);
            }
        }
    }

    private readonly record struct Reported(LoadState State, long AtMs);
}
