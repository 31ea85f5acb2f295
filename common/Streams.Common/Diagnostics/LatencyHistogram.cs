using System.Numerics;

namespace Streams.Common.Diagnostics;

/// <summary>
/// A concurrent log-linear histogram of non-negative values (latencies in microseconds, by convention).
/// Values below 128 are exact; above, each power of two is split into 64 buckets, so any percentile is
/// within 1.6% of the true value. Fixed memory (2,368 counters); recording is lock-free.
/// </summary>
public sealed class LatencyHistogram
{
    private const int LinearLimit = 128;
    private const int SubBuckets = 64;
    private const int MaxShift = 37;
    private const int BucketCount = LinearLimit + (MaxShift * SubBuckets);

    private readonly long[] _counts = new long[BucketCount];
    private long _count;
    private long _sum;
    private long _max;

    /// <summary>Number of recorded values.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Largest recorded value.</summary>
    public long Max => Interlocked.Read(ref _max);

    /// <summary>Mean of the recorded values, or 0 if none.</summary>
    public double Mean => Count == 0 ? 0 : (double)Interlocked.Read(ref _sum) / Count;

    /// <summary>Records one value; negative values count as 0.</summary>
    public void Record(long value)
    {
        value = Math.Max(0, value);
        Interlocked.Increment(ref _counts[IndexOf(value)]);
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _sum, value);
        var max = Interlocked.Read(ref _max);
        while (value > max)
        {
            var seen = Interlocked.CompareExchange(ref _max, value, max);
            if (seen == max)
            {
                break;
            }

            max = seen;
        }
    }

    /// <summary>The value at <paramref name="percentile"/> (0 to 100): the midpoint of its bucket, or 0 if empty.</summary>
    public long ValueAtPercentile(double percentile)
    {
        var total = Count;
        if (total == 0)
        {
            return 0;
        }

        var rank = (long)Math.Ceiling(Math.Clamp(percentile, 0, 100) / 100.0 * total);
        rank = Math.Max(rank, 1);
        long seen = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            seen += Interlocked.Read(ref _counts[i]);
            if (seen >= rank)
            {
                var (low, high) = BoundsOf(i);
                return Math.Min(low + ((high - low) / 2), Max);
            }
        }

        return Max;
    }

    /// <summary>Adds every value recorded in <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < BucketCount; i++)
        {
            var c = Interlocked.Read(ref other._counts[i]);
            if (c != 0)
            {
                Interlocked.Add(ref _counts[i], c);
            }
        }

        Interlocked.Add(ref _count, other.Count);
        Interlocked.Add(ref _sum, Interlocked.Read(ref other._sum));
        var max = other.Max;
        if (max > Max)
        {
            Interlocked.Exchange(ref _max, max);
        }
    }

    internal static int IndexOf(long value)
    {
        if (value < LinearLimit)
        {
            return (int)value;
        }

        var msb = 63 - BitOperations.LeadingZeroCount((ulong)value);
        var shift = msb - 6;
        if (shift > MaxShift)
        {
            return BucketCount - 1;
        }

        return LinearLimit + ((shift - 1) * SubBuckets) + (int)((value >> shift) - SubBuckets);
    }

    internal static (long Low, long High) BoundsOf(int index)
    {
        if (index < LinearLimit)
        {
            return (index, index);
        }

        var k = index - LinearLimit;
        var shift = (k / SubBuckets) + 1;
        var mantissa = (long)((k % SubBuckets) + SubBuckets);
        return (mantissa << shift, ((mantissa + 1) << shift) - 1);
    }
}
