using Streams.SegmentStore.Load;

namespace Streams.SegmentStore.Tests.Load;

/// <summary>The per-segment load meter (SegmentLoadMeter.cs): EWMA math, idle decay, seeds and the key histogram.</summary>
public sealed class SegmentLoadMeterTests
{
    private static readonly double[] Windows = [120_000, 300_000];

    [Fact]
    public void A_tick_folds_the_counts_in_with_alpha_from_the_interval_and_the_first_sample_does_not_replace_the_rate()
    {
        var meter = new SegmentLoadMeter();
        meter.Record(60, 600, 0);
        meter.Record(40, 400, 0);

        meter.Tick(5000, Windows);

        // 100 events and 1000 bytes in 5 s: 20 events/s, 200 B/s. α = 1 − e^(−5/120) = 0.0408105 and 1 − e^(−5/300) = 0.0165285,
        // from a rate of 0: the first sample moves the rate by α, it does not become 20.
        var state = meter.Capture();
        Assert.Equal(0.8162108578, state.EventRates[0], 9);
        Assert.Equal(0.3305709236, state.EventRates[1], 9);
        Assert.Equal(8.162108578, state.ByteRates[0], 8);
        Assert.Equal(5000, state.AgeMs);
    }

    [Fact]
    public void An_idle_segment_decays_at_every_tick()
    {
        var meter = new SegmentLoadMeter();
        meter.Record(100, 1000, 0);
        meter.Tick(5000, Windows);

        meter.Tick(5000, Windows);

        // No appends: rate × (1 − α) = 0.81621 × 0.95919.
        var state = meter.Capture();
        Assert.Equal(0.7829008496, state.EventRates[0], 9);
        Assert.Equal(0.3251070668, state.EventRates[1], 9);
        Assert.Equal(10_000, state.AgeMs);
        for (var i = 0; i < 200; i++)
        {
            meter.Tick(5000, Windows);
        }

        Assert.True(meter.Capture().EventRates[0] < 0.001, "A segment idle for 1,000 s has almost no rate left.");
    }

    [Fact]
    public void A_steady_load_converges_to_its_rate()
    {
        var meter = new SegmentLoadMeter();
        for (var i = 0; i < 1000; i++)
        {
            meter.Record(50, 5000, 0); // 10 events/s, 1000 B/s
            meter.Tick(5000, Windows);
        }

        var state = meter.Capture();
        Assert.Equal(10, state.EventRates[0], 6);
        Assert.Equal(10, state.EventRates[1], 4);
        Assert.Equal(1000, state.ByteRates[1], 2);
    }

    [Fact]
    public void A_seed_sets_the_rates_and_age_and_measuring_continues_from_it()
    {
        var meter = new SegmentLoadMeter();
        meter.Seed([20, 10], [2000, 1000], 60_000);

        meter.Tick(5000, Windows);

        var state = meter.Capture();
        Assert.Equal(20 * (1 - 0.0408105429), state.EventRates[0], 6);
        Assert.Equal(1000 * (1 - 0.0165285462), state.ByteRates[1], 4);
        Assert.Equal(65_000, state.AgeMs);
    }

    [Theory]
    [InlineData(1UL, 0)]
    [InlineData(2276332667UL, 16)] // 1 + ⌊0.53 × 2^32⌋: 0.53 of the range is in bucket ⌊0.53 × 32⌋
    [InlineData(1UL << 32, 31)]
    [InlineData(ulong.MaxValue, 31)]
    public void A_key_sample_picks_its_bucket(ulong sample, int bucket) => Assert.Equal(bucket, SegmentLoadMeter.BucketOf(sample));

    [Fact]
    public void The_key_histogram_weighs_samples_by_block_bytes_and_blocks_without_keys_count_in_no_bucket()
    {
        var meter = new SegmentLoadMeter();
        meter.Record(1, 3000, 2276332667UL); // bucket 16
        meter.Record(1, 1000, 1UL << 32); // bucket 31
        meter.Record(1, 5000, 0); // no key

        meter.Tick(5000, Windows);

        var shares = meter.Capture().KeyShares();
        Assert.Equal(SegmentLoadMeter.KeyBuckets, shares.Length);
        Assert.Equal(0.75, shares[16], 9);
        Assert.Equal(0.25, shares[31], 9);
        Assert.Equal(1.0, shares.Sum(), 9);
    }

    [Fact]
    public void The_key_histogram_decays_over_the_longest_window()
    {
        var meter = new SegmentLoadMeter();
        meter.Record(1, 1000, 1); // bucket 0
        meter.Tick(1, Windows);
        meter.Tick(300_000 - 1, Windows); // one longest window later, bucket 0 weighs e^−1 of what it did
        meter.Record(1, 1000, 1UL << 32); // bucket 31, as many bytes

        meter.Tick(1, Windows);

        var shares = meter.Capture().KeyShares();
        var old = Math.Exp(-1); // added at the first tick, decayed by the next two: 300,000 ms
        Assert.Equal(old / (old + 1), shares[0], 9);
        Assert.Equal(1 / (old + 1), shares[31], 9);
    }

    [Fact]
    public void A_meter_that_measured_nothing_has_no_key_shares() => Assert.Empty(new SegmentLoadMeter().Capture().KeyShares());
}
