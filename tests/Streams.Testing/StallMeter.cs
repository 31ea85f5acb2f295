using System.Diagnostics;

namespace Streams.Testing;

/// <summary>
/// How long a fault held acknowledgements back: each acknowledgement is recorded, per key, as it comes, and a stall is
/// how long a key waited between two of them. Fault tests print the longest and bound it.
/// </summary>
public sealed class StallMeter
{
    /// <summary>How often <see cref="SampleAsync"/> looks at a count: well below the stalls the tests bound (seconds).</summary>
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(5);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<TimeSpan>[] _acks;

    /// <param name="keys">How many keys (0 to keys - 1) acknowledgements are recorded for.</param>
    public StallMeter(int keys = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keys, 1);
        _acks = new List<TimeSpan>[keys];
        for (var k = 0; k < keys; k++)
        {
            _acks[k] = [];
        }
    }

    /// <summary>Time since the meter started, on the clock acknowledgements are recorded by.</summary>
    public TimeSpan Now => _clock.Elapsed;

    /// <summary>Records an acknowledgement of <paramref name="key"/>, now.</summary>
    public void Acknowledged(int key = 0)
    {
        var acks = _acks[key];
        lock (acks)
        {
            acks.Add(_clock.Elapsed);
        }
    }

    /// <summary>The longest any key waited for an acknowledgement in a wait that ended after <paramref name="since"/>.</summary>
    public TimeSpan LongestStall(TimeSpan since)
    {
        var longest = TimeSpan.Zero;
        foreach (var acks in _acks)
        {
            lock (acks)
            {
                for (var i = 1; i < acks.Count; i++)
                {
                    if (acks[i] > since && acks[i] - acks[i - 1] > longest)
                    {
                        longest = acks[i] - acks[i - 1];
                    }
                }
            }
        }

        return longest;
    }

    /// <summary>
    /// For a load that only counts its acknowledgements: looks at the count every 5 ms for <paramref name="window"/>
    /// and returns the longest time it stood still (the window's start and end bound the first and last waits).
    /// </summary>
    public static Task<TimeSpan> SampleAsync(Func<long> acknowledged, TimeSpan window) => Task.Run(async () =>
    {
        var meter = new StallMeter();
        meter.Acknowledged();
        var last = acknowledged();
        while (meter.Now < window)
        {
            await Task.Delay(SampleInterval);
            var count = acknowledged();
            if (count != last)
            {
                last = count;
                meter.Acknowledged();
            }
        }

        // The window's end closes the wait still going on.
        meter.Acknowledged();
        return meter.LongestStall(TimeSpan.Zero);
    });
}
