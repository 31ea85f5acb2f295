using Grpc.Core;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// The leading controller's view of segment load: the latest report of each segment, with when it arrived, and the hot
/// keys the last evaluation found. Memory is bounded by the streams, not by the reports: it keeps a report only for a
/// segment of the current epoch of a stream the controller knows and that is open, and <see cref="Forget"/> drops
/// segments that left their epoch and streams that were sealed or deleted. Reports arriving while this controller does
/// not lead are refused (the segment store looks for the leader), and a new leadership starts empty (<see cref="Reset"/>):
/// the stores report again within their report interval, and until then the segments are left alone.
/// </summary>
public sealed class SegmentLoadTracker : ISegmentLoads
{
    private readonly Func<string, string, StreamRecord?> _streams;
    private readonly Func<bool> _leading;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Received> _latest = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Scope, string Stream), IReadOnlyList<HotKey>> _hotKeys = [];

    /// <param name="streams">The stream record the controller knows for a scope and stream, or null.</param>
    /// <param name="leading">Whether this controller leads now.</param>
    /// <param name="time">The clock reports are stamped with.</param>
    public SegmentLoadTracker(Func<string, string, StreamRecord?> streams, Func<bool> leading, TimeProvider? time = null)
    {
        _streams = streams;
        _leading = leading;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Whether this controller leads, so that it takes reports and decides.</summary>
    public bool IsLeading => _leading();

    /// <summary>Segments with a report kept.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _latest.Count;
            }
        }
    }

    /// <summary>
    /// Keeps the report's loads of segments in the current epoch of known open streams and drops the rest. False (and
    /// nothing kept) when this controller does not lead. A malformed report is refused whole with INVALID_ARGUMENT
    /// naming the field.
    /// </summary>
    public bool Accept(LoadReport report)
    {
        if (Invalid(report) is { } error)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error));
        }

        if (!_leading())
        {
            return false;
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var load in report.Segments)
        {
            if (!SegmentName.TryParse(load.Segment, out var name)
                || _streams(name.Value.Scope, name.Value.Stream) is not { IsOpen: true } record
                || !IsActive(record, name.Value.Number, name.Value.Epoch))
            {
                continue;
            }

            lock (_lock)
            {
                _latest[name.Value.ToString()] = new Received(load, now);
            }
        }

        return true;
    }

    public SegmentLoad? Latest(string segment)
    {
        lock (_lock)
        {
            return _latest.TryGetValue(SegmentName.TryParse(segment, out var name) ? name.Value.ToString() : segment, out var received) ? received.Load : null;
        }
    }

    public IReadOnlyList<HotKey> HotKeys(string scope, string stream)
    {
        lock (_lock)
        {
            return _hotKeys.TryGetValue((scope, stream), out var hot) ? hot : [];
        }
    }

    /// <summary>
    /// The stream's active segments' reports that arrived at most <paramref name="freshnessMs"/> ago, by segment id, each
    /// with its age moved on to now. Older reports are no evidence and are left out.
    /// </summary>
    public IReadOnlyDictionary<long, SegmentLoad> FreshLoads(StreamRecord record, long nowUnixMs, long freshnessMs)
    {
        var loads = new Dictionary<long, SegmentLoad>();
        lock (_lock)
        {
            foreach (var segment in record.ActiveSegments)
            {
                if (_latest.TryGetValue(new SegmentName(record.Scope, record.Stream, segment.Number, segment.Epoch).ToString(), out var received)
                    && nowUnixMs - received.AtUnixMs <= freshnessMs)
                {
                    var load = received.Load.Clone();
                    load.AgeMs += Math.Max(0, nowUnixMs - received.AtUnixMs);
                    loads[SegmentName.ComposeId(segment.Epoch, segment.Number)] = load;
                }
            }
        }

        return loads;
    }

    /// <summary>Records what the latest evaluation of a stream found hot (empty: nothing).</summary>
    public void SetHotKeys(string scope, string stream, IReadOnlyList<HotKey> hotKeys)
    {
        lock (_lock)
        {
            if (hotKeys.Count == 0)
            {
                _hotKeys.Remove((scope, stream));
            }
            else
            {
                _hotKeys[(scope, stream)] = hotKeys;
            }
        }
    }

    /// <summary>
    /// Keeps only the reports of the current epochs of the open streams among <paramref name="streams"/> (every stream
    /// there is), and the hot keys of those streams.
    /// </summary>
    public void Forget(IReadOnlyCollection<StreamRecord> streams)
    {
        var open = streams.Where(r => r.IsOpen).ToDictionary(r => (r.Scope, r.Stream));
        lock (_lock)
        {
            foreach (var segment in _latest.Keys.ToList())
            {
                if (!SegmentName.TryParse(segment, out var name) || !open.TryGetValue((name.Value.Scope, name.Value.Stream), out var record) || !IsActive(record, name.Value.Number, name.Value.Epoch))
                {
                    _latest.Remove(segment);
                }
            }

            foreach (var stream in _hotKeys.Keys.Where(k => !open.ContainsKey(k)).ToList())
            {
                _hotKeys.Remove(stream);
            }
        }
    }

    /// <summary>Forgets everything: a new leadership starts from fresh reports.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _latest.Clear();
            _hotKeys.Clear();
        }
    }

    /// <summary>What is wrong with a report, or null: every segment named, every window's rates there, finite and not negative.</summary>
    internal static string? Invalid(LoadReport report)
    {
        for (var i = 0; i < report.Segments.Count; i++)
        {
            var load = report.Segments[i];
            var field = $"LoadReport.segments[{i}]";
            if (!SegmentName.TryParse(load.Segment, out _))
            {
                return $"{field}.segment '{load.Segment}' is not a segment name (expected scope/stream/number.#epoch.N).";
            }

            if (load.AgeMs < 0)
            {
                return $"{field}.age_ms is negative ({load.AgeMs}) for {load.Segment}.";
            }

            foreach (var (name, values, counts) in new[]
            {
                ("event_rates", load.EventRates, new[] { ScalingSettings.WindowCount }),
                ("byte_rates", load.ByteRates, new[] { ScalingSettings.WindowCount }),
                ("key_buckets", load.KeyBuckets, new[] { 0, ScalePlanner.Buckets }),
            })
            {
                if (!counts.Contains(values.Count))
                {
                    return $"{field}.{name} has {values.Count} values for {load.Segment}; it needs {string.Join(" or ", counts)} (one per {(name == "key_buckets" ? "routing-key bucket" : "window, shortest first")}).";
                }

                if (values.Any(v => !double.IsFinite(v) || v < 0))
                {
                    return $"{field}.{name} of {load.Segment} holds a negative or non-finite value.";
                }
            }
        }

        return null;
    }

    private static bool IsActive(StreamRecord record, int number, int epoch)
    {
        foreach (var segment in record.ActiveSegments)
        {
            if (segment.Number == number && segment.Epoch == epoch)
            {
                return true;
            }
        }

        return false;
    }

    private readonly record struct Received(SegmentLoad Load, long AtUnixMs);
}
