namespace Streams.Hosting.Tests;

public sealed class GcPauseSamplerTests
{
    [Fact]
    public void Collections_are_recorded_with_their_pauses_and_nothing_is_counted_twice()
    {
        // Other tests in this process allocate too, so collections not forced here may be recorded as well.
        var pauses = new List<double>();
        var before = GC.GetTotalPauseDuration();
        using var sampler = new GcPauseSampler(pauses.Add, timer: false);

        GC.Collect(2, GCCollectionMode.Forced, blocking: true);
        sampler.Sample();
        var latest = GC.GetGCMemoryInfo(GCKind.Any);
        Assert.NotEmpty(pauses);
        Assert.True(pauses[^1] > 0, "A blocking collection pauses the process.");

        // Three collections between two looks: each is recorded, the latest with its own pauses.
        var seen = pauses.Count;
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true);
        }

        sampler.Sample();
        Assert.True(pauses.Count - seen >= 3, $"{pauses.Count - seen} pauses recorded for 3 collections.");
        Assert.All(pauses, p => Assert.InRange(p, 0, 5));
        Assert.True(GC.GetGCMemoryInfo(GCKind.Any).Index > latest.Index);

        // Everything recorded paused the process between the first look and now, and nothing twice.
        Assert.InRange(pauses.Sum(), 0, (GC.GetTotalPauseDuration() - before).TotalSeconds + 1e-9);
    }
}
