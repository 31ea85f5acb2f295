using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Streams.Client.Writing;

namespace Streams.Integration.Tests;

/// <summary>
/// A write load at a set rate for scaling tests: events "key:sequence" over a set of routing keys, paced in 50 ms
/// slices, the rate changeable while it runs. Records what was attempted and acknowledged, so a read can be checked
/// for loss, duplicates and per-key order. Bounded in time.
/// </summary>
internal sealed class PacedLoad
{
    private readonly ConcurrentDictionary<string, bool> _acknowledged = new();
    private readonly ConcurrentDictionary<string, bool> _attempted = new();
    private readonly CancellationTokenSource _stop;
    private readonly Task _loop;
    private readonly string[] _keys;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _rate;
    private int _failed;
    private long _lastAckTicks;
    private long _longestGapTicks;

    private PacedLoad(EventStreamWriter<string> writer, double eventsPerSecond, string[] keys, TimeSpan maxDuration)
    {
        _rate = eventsPerSecond;
        _keys = keys;
        _stop = new CancellationTokenSource(maxDuration);
        _loop = Task.Run(() => RunAsync(writer));
    }

    public int Acknowledged => _acknowledged.Count;

    public int Failed => Volatile.Read(ref _failed);

    /// <summary>The longest time with no acknowledgement at all (of any key): how long the whole load stalled at worst.</summary>
    public TimeSpan LongestStall => TimeSpan.FromTicks(Volatile.Read(ref _longestGapTicks));

    /// <summary>Events per second from now on (0 pauses the load).</summary>
    public double Rate
    {
        get => Volatile.Read(ref _rate);
        set => Volatile.Write(ref _rate, value);
    }

    public static PacedLoad Start(EventStreamWriter<string> writer, double eventsPerSecond, int keys = 64, TimeSpan? maxDuration = null) =>
        new(writer, eventsPerSecond, [.. Enumerable.Range(0, keys).Select(k => "key-" + k.ToString(CultureInfo.InvariantCulture))], maxDuration ?? TimeSpan.FromMinutes(3));

    /// <summary>A load whose every event has the same routing key.</summary>
    public static PacedLoad StartOneKey(EventStreamWriter<string> writer, double eventsPerSecond, TimeSpan? maxDuration = null) =>
        new(writer, eventsPerSecond, ["hot"], maxDuration ?? TimeSpan.FromMinutes(3));

    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync();
        await _loop.WaitAsync(timeout);
    }

    /// <summary>
    /// Asserts that <paramref name="read"/> (value, routing key) holds every acknowledged event once, nothing never
    /// written, and each key's events in the order written.
    /// </summary>
    /// <param name="read">What a reader got back, in read order.</param>
    /// <param name="positions">Where each value was read (segment:offset), named around an order violation.</param>
    public void Verify(IReadOnlyList<(string Value, string? Key)> read, IReadOnlyDictionary<string, string>? positions = null)
    {
        var values = read.Select(r => r.Value).ToList();
        var duplicates = values.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} events were read more than once, e.g. {string.Join(", ", duplicates.Take(5))}");
        var foreign = values.Where(v => !_attempted.ContainsKey(v)).ToList();
        Assert.True(foreign.Count == 0, $"{foreign.Count} events were read that were never written, e.g. {string.Join(", ", foreign.Take(5))}");
        var missing = _acknowledged.Keys.Except(values).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {_acknowledged.Count} acknowledged events were lost, e.g. {string.Join(", ", missing.Take(5))}");
        foreach (var key in read.GroupBy(r => r.Key))
        {
            var sequence = key.Select(r => long.Parse(r.Value.Split(':')[1], CultureInfo.InvariantCulture)).ToList();
            if (!sequence.SequenceEqual(sequence.Order()))
            {
                var first = Enumerable.Range(1, sequence.Count - 1).First(i => sequence[i] < sequence[i - 1]);
                var around = key.Skip(Math.Max(0, first - 10)).Take(20)
                    .Select(r => r.Value.Split(':')[1] + (positions?.GetValueOrDefault(r.Value) is { } at ? "@" + at : ""));
                Assert.Fail($"Events of key {key.Key} were read out of order: {string.Join(",", sequence.Take(50))}; around the first inversion: {string.Join(", ", around)}");
            }
        }
    }

    private void OnAcknowledged(long now)
    {
        var last = Interlocked.Exchange(ref _lastAckTicks, now);
        var gap = now - last;
        for (var longest = Volatile.Read(ref _longestGapTicks); last != 0 && gap > longest; longest = Volatile.Read(ref _longestGapTicks))
        {
            if (Interlocked.CompareExchange(ref _longestGapTicks, gap, longest) == longest)
            {
                break;
            }
        }
    }

    private async Task RunAsync(EventStreamWriter<string> writer)
    {
        var pending = new List<Task>();
        var clock = Stopwatch.StartNew();
        var due = 0.0;
        long sequence = 0;
        while (!_stop.IsCancellationRequested)
        {
            var slice = clock.Elapsed.TotalSeconds;
            try
            {
                await Task.Delay(50, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            due += Rate * (clock.Elapsed.TotalSeconds - slice);
            for (; due >= 1; due--)
            {
                var key = _keys[sequence % _keys.Length];
                var value = key + ":" + sequence.ToString(CultureInfo.InvariantCulture);
                sequence++;
                _attempted[value] = true;
                pending.Add(writer.WriteEventAsync(key, value).ContinueWith(
                    t =>
                    {
                        if (t.IsCompletedSuccessfully)
                        {
                            _acknowledged[value] = true;
                            OnAcknowledged(_clock.Elapsed.Ticks);
                        }
                        else
                        {
                            Interlocked.Increment(ref _failed);
                        }
                    },
                    TaskScheduler.Default));
            }

            pending.RemoveAll(t => t.IsCompleted);
            if (pending.Count > 20_000)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }

        await Task.WhenAll(pending);
    }
}
