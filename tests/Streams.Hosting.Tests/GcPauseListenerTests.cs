using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Streams.Hosting.Tests;

public sealed class GcPauseListenerTests
{
    [Fact]
    public async Task Each_collection_of_the_process_is_recorded_as_a_pause()
    {
        var pauses = new ConcurrentQueue<double>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == GcPauseListener.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<double>((_, value, _, _) => pauses.Enqueue(value));
        meters.Start();

        using var gcPauses = new GcPauseListener();
        var clock = Stopwatch.StartNew();
        while (pauses.Count < 3 && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            // Blocking collections: each suspends the process once. Runtime events reach an in-process listener
            // with a short delay, so the loop waits for them.
            GC.Collect(2, GCCollectionMode.Forced, blocking: true);
            await Task.Delay(50);
        }

        Assert.True(pauses.Count >= 3, $"{pauses.Count} pauses recorded in {clock.Elapsed}.");
        Assert.All(pauses, p => Assert.InRange(p, 0, 5));
        Assert.Contains(pauses, p => p > 0);
    }
}
