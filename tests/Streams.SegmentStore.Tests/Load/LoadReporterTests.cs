using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.Controller;
using Streams.SegmentStore.Load;

namespace Streams.SegmentStore.Tests.Load;

/// <summary>What goes to the controller when (LoadReporter.cs): ±25% changes, the report interval, one report in flight, batches.</summary>
public sealed class LoadReporterTests
{
    private const long Interval = 120_000;

    [Fact]
    public async Task A_segment_is_reported_first_then_only_on_a_significant_change_or_after_the_interval()
    {
        var sink = new RecordingSink();
        var reporter = new LoadReporter(sink, "store-1", Interval, NullLogger.Instance);

        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(100, 100_000))], 0));
        Assert.Equal("store-1", Assert.Single(sink.Reports).SegmentStore);

        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(120, 110_000))], 5_000)); // +20%, +10%: not significant
        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(80, 90_000))], 10_000)); // −20%

        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(130, 100_000))], 15_000)); // +30% events
        Assert.Equal(130, sink.Reports[^1].Segments.Single().EventRates[0]);

        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(130, 70_000))], 20_000)); // −30% bytes
        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(130, 70_000))], 20_000 + Interval - 1));
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(130, 70_000))], 20_000 + Interval)); // unchanged, but due
        Assert.Equal(4, sink.Reports.Count);
    }

    [Fact]
    public async Task Tiny_absolute_changes_are_not_significant()
    {
        var sink = new RecordingSink();
        var reporter = new LoadReporter(sink, "s", Interval, NullLogger.Instance);
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(0.1, 100))], 0));

        // Ten times the rate, but under 1 event/s and 1 KiB/s more.
        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(1.0, 1000))], 5_000));
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(1.2, 1000))], 10_000));
    }

    [Fact]
    public async Task Only_changed_segments_go_and_only_one_report_is_in_flight()
    {
        var sink = new RecordingSink { Gate = new TaskCompletionSource() };
        var reporter = new LoadReporter(sink, "s", Interval, NullLogger.Instance);
        var first = reporter.OnTick([("s/t/0.#epoch.0", Rates(10, 10_000)), ("s/t/1.#epoch.0", Rates(10, 10_000))], 0);
        Assert.NotNull(first);

        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(50, 10_000)), ("s/t/1.#epoch.0", Rates(10, 10_000))], 5_000));
        sink.Gate.SetResult();
        await Sent(first);

        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(50, 10_000)), ("s/t/1.#epoch.0", Rates(10, 10_000))], 10_000));
        Assert.Equal(2, sink.Reports.Count);
        Assert.Equal("s/t/0.#epoch.0", sink.Reports[1].Segments.Single().Segment);
    }

    [Fact]
    public async Task A_refused_or_failed_report_is_sent_again_at_the_next_tick()
    {
        var sink = new RecordingSink { Answer = false };
        var reporter = new LoadReporter(sink, "s", Interval, NullLogger.Instance);
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(10, 10_000))], 0));

        sink.Answer = null; // throws
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(10, 10_000))], 5_000));

        sink.Answer = true;
        await Sent(reporter.OnTick([("s/t/0.#epoch.0", Rates(10, 10_000))], 10_000));
        Assert.Null(reporter.OnTick([("s/t/0.#epoch.0", Rates(10, 10_000))], 15_000));
        Assert.Equal(3, sink.Calls);
    }

    [Fact]
    public async Task Many_segments_go_in_batches_of_at_most_a_thousand()
    {
        var sink = new RecordingSink();
        var reporter = new LoadReporter(sink, "s", Interval, NullLogger.Instance);
        var segments = Enumerable.Range(0, 2500).Select(i => ($"s/t/{i}.#epoch.0", Rates(10, 10_000))).ToList();

        await Sent(reporter.OnTick(segments, 0));

        Assert.Equal([1000, 1000, 500], sink.Reports.Select(r => r.Segments.Count));
        Assert.Equal(2500, sink.Reports.SelectMany(r => r.Segments).Select(s => s.Segment).Distinct().Count());
    }

    [Fact]
    public async Task A_report_carries_the_rates_the_age_and_the_key_shares()
    {
        var sink = new RecordingSink();
        var reporter = new LoadReporter(sink, "s", Interval, NullLogger.Instance);
        var keys = new double[SegmentLoadMeter.KeyBuckets];
        keys[3] = 300;
        keys[4] = 100;

        await Sent(reporter.OnTick([("s/t/0.#epoch.0", new LoadState([1, 2, 3, 4], [10, 20, 30, 40], 7000, keys))], 0));

        var load = sink.Reports.Single().Segments.Single();
        Assert.Equal([1.0, 2, 3, 4], load.EventRates);
        Assert.Equal([10.0, 20, 30, 40], load.ByteRates);
        Assert.Equal(7000, load.AgeMs);
        Assert.Equal(0.75, load.KeyBuckets[3]);
        Assert.Equal(0.25, load.KeyBuckets[4]);
    }

    private static LoadState Rates(double events, double bytes) =>
        new([events, events, events, events], [bytes, bytes, bytes, bytes], 0, new double[SegmentLoadMeter.KeyBuckets]);

    private static async Task Sent(Task? report)
    {
        Assert.NotNull(report);
        await report.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    private sealed class RecordingSink : ISegmentLoadSink
    {
        public List<LoadReport> Reports { get; } = [];

        public int Calls { get; private set; }

        /// <summary>What to answer: accepted, refused, or (null) an error.</summary>
        public bool? Answer { get; set; } = true;

        public TaskCompletionSource? Gate { get; init; }

        public async Task<bool> ReportAsync(LoadReport report, CancellationToken cancellationToken)
        {
            Calls++;
            if (Gate is { } gate)
            {
                await gate.Task;
            }

            var answer = Answer ?? throw new InvalidOperationException("The controller is unreachable.");
            if (answer)
            {
                Reports.Add(report.Clone());
            }

            return answer;
        }
    }
}
