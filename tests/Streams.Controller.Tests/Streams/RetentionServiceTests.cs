using Streams.Contracts.Controller;
using Streams.Controller.Streams;

namespace Streams.Controller.Tests.Streams;

public sealed class RetentionServiceTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static List<RetentionService.Sample> Samples(params (int Seconds, long Total)[] points) =>
        [.. points.Select(p => new RetentionService.Sample(Start.AddSeconds(p.Seconds), p.Total, new StreamCut()))];

    [Fact]
    public void Time_retention_truncates_at_the_newest_cut_older_than_the_retention()
    {
        var samples = Samples((0, 0), (10, 100), (20, 200), (30, 300));
        Assert.Equal(1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: 15_000, sizeBytes: null));
        Assert.Equal(-1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: 60_000, sizeBytes: null));
    }

    [Fact]
    public void Size_retention_keeps_at_least_the_limit_after_the_cut()
    {
        var samples = Samples((0, 0), (10, 100), (20, 200), (30, 300));
        Assert.Equal(1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 150));
        Assert.Equal(2, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 100));
        Assert.Equal(-1, RetentionService.Choose(samples, Start.AddSeconds(30), 300, timeMs: null, sizeBytes: 301));
    }
}
