using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Streams.Common.Server.Metrics;

/// <summary>
/// Collects the measurements of every meter whose name starts with "Streams" and renders them in the
/// Prometheus text exposition format (version 0.0.4) for a /metrics endpoint. The package mirror has no
/// Prometheus exporter, and this is all that one would do: counters become "_total" counters, gauges and
/// up-down counters gauges, histograms cumulative buckets.
/// </summary>
internal sealed class PrometheusMetrics : IDisposable
{
    /// <summary>Histogram bucket bounds, in the instrument's unit (milliseconds for latencies).</summary>
    private static readonly double[] Bounds = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, ConcurrentDictionary<string, Series>> _instruments = new();

    public PrometheusMetrics(string meterPrefix = "Streams")
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name.StartsWith(meterPrefix, StringComparison.Ordinal))
            {
                _instruments.TryAdd(instrument, new ConcurrentDictionary<string, Series>(StringComparer.Ordinal));
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        _listener.Start();
    }

    /// <summary>Renders all series in Prometheus text format, polling observable instruments first.</summary>
    public string Render()
    {
        _listener.RecordObservableInstruments();
        var text = new StringBuilder();
        foreach (var (instrument, series) in _instruments.OrderBy(p => p.Key.Name, StringComparer.Ordinal))
        {
            if (series.IsEmpty)
            {
                continue;
            }

            var name = Sanitize(instrument.Name);
            var kind = KindOf(instrument);
            if (kind == Kind.Counter)
            {
                name += "_total";
            }

            var help = instrument.Description ?? instrument.Name;
            text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\n", " ", StringComparison.Ordinal)).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(kind switch
            {
                Kind.Counter => "counter",
                Kind.Histogram => "histogram",
                _ => "gauge",
            }).Append('\n');

            foreach (var (labels, s) in series.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                lock (s)
                {
                    if (kind != Kind.Histogram)
                    {
                        AppendSample(text, name, labels, s.Value);
                        continue;
                    }

                    long cumulative = 0;
                    for (var b = 0; b < Bounds.Length; b++)
                    {
                        cumulative += s.Buckets![b];
                        AppendSample(text, name + "_bucket", Join(labels, "le=\"" + Format(Bounds[b]) + "\""), cumulative);
                    }

                    AppendSample(text, name + "_bucket", Join(labels, "le=\"+Inf\""), s.Count);
                    AppendSample(text, name + "_sum", labels, s.Value);
                    AppendSample(text, name + "_count", labels, s.Count);
                }
            }
        }

        return text.ToString();
    }

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (!_instruments.TryGetValue(instrument, out var all))
        {
            return;
        }

        var labels = LabelsOf(tags);
        var kind = KindOf(instrument);
        var series = all.GetOrAdd(labels, _ => new Series(kind == Kind.Histogram ? new long[Bounds.Length] : null));
        lock (series)
        {
            switch (instrument)
            {
                case Histogram<long> or Histogram<int> or Histogram<double>:
                    series.Value += value;
                    series.Count++;
                    var bucket = Array.FindIndex(Bounds, b => value <= b);
                    if (bucket >= 0)
                    {
                        series.Buckets![bucket]++;
                    }

                    break;
                case Counter<long> or Counter<int> or Counter<double> or UpDownCounter<long> or UpDownCounter<int> or UpDownCounter<double>:
                    series.Value += value;
                    break;
                default:
                    // Observable instruments report their current (for counters: cumulative) value.
                    series.Value = value;
                    break;
            }
        }
    }

    private static Kind KindOf(Instrument instrument) => instrument switch
    {
        Counter<long> or Counter<int> or Counter<double> or ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double> => Kind.Counter,
        Histogram<long> or Histogram<int> or Histogram<double> => Kind.Histogram,
        _ => Kind.Gauge,
    };

    private static string LabelsOf(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return string.Empty;
        }

        var pairs = new List<string>(tags.Length);
        foreach (var (key, value) in tags)
        {
            pairs.Add(Sanitize(key) + "=\"" + Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty) + "\"");
        }

        pairs.Sort(StringComparer.Ordinal);
        return string.Join(",", pairs);
    }

    private static string Join(string labels, string extra) => labels.Length == 0 ? extra : labels + "," + extra;

    private static void AppendSample(StringBuilder text, string name, string labels, double value)
    {
        text.Append(name);
        if (labels.Length > 0)
        {
            text.Append('{').Append(labels).Append('}');
        }

        text.Append(' ').Append(Format(value)).Append('\n');
    }

    private static string Format(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Sanitize(string name)
    {
        var chars = name.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if (!char.IsAsciiLetterOrDigit(chars[i]) && chars[i] != '_' && chars[i] != ':')
            {
                chars[i] = '_';
            }
        }

        return char.IsAsciiDigit(chars[0]) ? "_" + new string(chars) : new string(chars);
    }

    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private enum Kind
    {
        Counter,
        Gauge,
        Histogram,
    }

    private sealed class Series
    {
        public Series(long[]? buckets)
        {
            Buckets = buckets;
        }

        public double Value { get; set; }

        public long Count { get; set; }

        public long[]? Buckets { get; }
    }
}
