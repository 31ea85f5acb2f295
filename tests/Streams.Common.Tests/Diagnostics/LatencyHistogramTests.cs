using Streams.Common.Diagnostics;

namespace Streams.Common.Tests.Diagnostics;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void Percentiles_are_within_two_percent()
    {
        var histogram = new LatencyHistogram();
        for (var v = 1; v <= 100_000; v++)
        {
            histogram.Record(v);
        }

        Assert.Equal(100_000, histogram.Count);
        Assert.InRange(histogram.ValueAtPercentile(50), 49_000, 51_000);
        Assert.InRange(histogram.ValueAtPercentile(99), 98_000, 100_000);
        Assert.InRange(histogram.ValueAtPercentile(99.9), 99_000, 100_000);
        Assert.Equal(100_000, histogram.Max);
        Assert.Equal(50_000.5, histogram.Mean, 1);
    }

    [Fact]
    public void Small_values_are_exact_and_empty_is_zero()
    {
        var histogram = new LatencyHistogram();
        Assert.Equal(0, histogram.ValueAtPercentile(99));
        histogram.Record(7);
        histogram.Record(-3);
        Assert.Equal(7, histogram.ValueAtPercentile(100));
        Assert.Equal(0, histogram.ValueAtPercentile(1));
    }

    [Fact]
    public void Every_bucket_contains_the_values_mapped_to_it()
    {
        foreach (var value in new long[] { 0, 1, 127, 128, 129, 255, 256, 1_000, 65_535, 1L << 30, 1L << 42 })
        {
            var (low, high) = LatencyHistogram.BoundsOf(LatencyHistogram.IndexOf(value));
            Assert.InRange(value, low, Math.Max(high, value));
        }
    }

    [Fact]
    public void Concurrent_recording_loses_nothing()
    {
        var histogram = new LatencyHistogram();
        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                histogram.Record(i);
            }
        });
        Assert.Equal(80_000, histogram.Count);
    }
}
