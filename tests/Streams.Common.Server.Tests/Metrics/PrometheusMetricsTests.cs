using System.Diagnostics.Metrics;
using Streams.Common.Server.Metrics;

namespace Streams.Common.Server.Tests.Metrics;

public sealed class PrometheusMetricsTests
{
    [Fact]
    public void Renders_counters_gauges_and_histograms_in_text_format()
    {
        using var metrics = new PrometheusMetrics("StreamsTest");
        using var meter = new Meter("StreamsTest.Render");
        var counter = meter.CreateCounter<long>("streams.test.appends", description: "Appends.");
        var histogram = meter.CreateHistogram<double>("streams.test.latency", "ms");
        meter.CreateObservableGauge("streams.test.segments", () => new Measurement<int>(3, new KeyValuePair<string, object?>("stream", "s\"1")));

        counter.Add(2, new KeyValuePair<string, object?>("container", 1));
        counter.Add(3, new KeyValuePair<string, object?>("container", 1));
        histogram.Record(0.3);
        histogram.Record(7);

        var text = metrics.Render();
        Assert.Contains("# TYPE streams_test_appends_total counter", text);
        Assert.Contains("streams_test_appends_total{container=\"1\"} 5", text);
        Assert.Contains("# TYPE streams_test_segments gauge", text);
        Assert.Contains("streams_test_segments{stream=\"s\\\"1\"} 3", text);
        Assert.Contains("streams_test_latency_bucket{le=\"0.5\"} 1", text);
        Assert.Contains("streams_test_latency_bucket{le=\"10\"} 2", text);
        Assert.Contains("streams_test_latency_bucket{le=\"+Inf\"} 2", text);
        Assert.Contains("streams_test_latency_count 2", text);
    }

    [Fact]
    public void Ignores_meters_outside_the_prefix()
    {
        using var metrics = new PrometheusMetrics("StreamsTest");
        using var meter = new Meter("Other.Meter");
        meter.CreateCounter<long>("other.count").Add(1);
        Assert.DoesNotContain("other_count", metrics.Render());
    }
}
