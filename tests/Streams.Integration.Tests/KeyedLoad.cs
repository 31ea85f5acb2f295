using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Streams.Client.Writing;

namespace Streams.Integration.Tests;

/// <summary>
/// A write load that measures stalls per routing key: one task per key, each writing its next event ("key:0:seq")
/// once the previous one is acknowledged, so the time between a key's acknowledgements is exactly how long its
/// container kept it waiting. <see cref="Verify"/> checks what a reader got back. Bounded in count and time.
/// </summary>
internal sealed class KeyedLoad
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenSource _stop;
    private readonly ConcurrentDictionary<string, bool> _acknowledged = new();
    private readonly ConcurrentDictionary<string, bool> _attempted = new();
    private readonly List<TimeSpan>[] _acks;
    private readonly Task[] _writers;

    /// <param name="writer">The writer every key goes through.</param>
    /// <param name="keys">Routing keys, one writing task each.</param>
    /// <param name="maxDuration">The load stops by itself after this long (default 3 minutes).</param>
    public KeyedLoad(EventStreamWriter<string> writer, int keys = 16, TimeSpan? maxDuration = null)
    {
        _stop = new CancellationTokenSource(maxDuration ?? TimeSpan.FromMinutes(3));
        _acks = Enumerable.Range(0, keys).Select(_ => new List<TimeSpan>()).ToArray();
        _writers = Enumerable.Range(0, keys).Select(k => Task.Run(() => WriteAsync(writer, k))).ToArray();
    }

    /// <summary>Time since the load started, the clock of every other member.</summary>
    public TimeSpan Now => _clock.Elapsed;

    public int Acknowledged => _acknowledged.Count;

    public IReadOnlySet<string> AcknowledgedEvents => _acknowledged.Keys.ToHashSet();

    public async Task<bool> WaitForAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Acknowledged < count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        return Acknowledged >= count;
    }

    /// <summary>Waits until every key has had <paramref name="acks"/> acknowledgements after <paramref name="since"/>.</summary>
    public async Task<bool> WaitForEveryKeyAsync(TimeSpan since, int acks, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_acks.All(a => { lock (a) { return a.Count(t => t > since) >= acks; } }))
            {
                return true;
            }

            await Task.Delay(20);
        }

        return false;
    }

    /// <summary>
    /// The longest any key waited for an acknowledgement in a wait that ended after <paramref name="since"/>; a key still
    /// waiting counts with its wait so far.
    /// </summary>
    public TimeSpan LongestStall(TimeSpan since)
    {
        var now = Now;
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

                if (acks.Count > 0 && now - acks[^1] > longest && !_stop.IsCancellationRequested)
                {
                    longest = now - acks[^1];
                }
            }
        }

        return longest;
    }

    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_writers).WaitAsync(timeout);
    }

    /// <summary>
    /// Counts what is wrong with <paramref name="read"/>: acknowledged events missing, events read more than once, events
    /// read after a later one of their key, and events never written.
    /// </summary>
    public (int Lost, int Duplicated, int OutOfOrder, int Foreign) Check(IReadOnlyList<string> read)
    {
        var lost = AcknowledgedEvents.Except(read).Count();
        var duplicated = read.Count - read.Distinct().Count();
        var foreign = read.Count(v => !_attempted.ContainsKey(v));
        var outOfOrder = 0;
        foreach (var key in read.GroupBy(v => v.Split(':')[0]))
        {
            var highest = -1;
            foreach (var seq in key.Select(v => int.Parse(v.Split(':')[2], CultureInfo.InvariantCulture)))
            {
                outOfOrder += seq < highest ? 1 : 0;
                highest = Math.Max(highest, seq);
            }
        }

        return (lost, duplicated, outOfOrder, foreign);
    }

    /// <summary>Asserts that <paramref name="read"/> holds every acknowledged event once, per key in order, and nothing never written.</summary>
    public void Verify(IReadOnlyList<string> read)
    {
        Assert.Equal(read.Count, read.Distinct().Count());
        var foreign = read.Where(v => !_attempted.ContainsKey(v)).ToList();
        Assert.True(foreign.Count == 0, $"{foreign.Count} events were read that were never written, e.g. {string.Join(", ", foreign.Take(5))}");
        var missing = AcknowledgedEvents.Except(read).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged events were lost, e.g. {string.Join(", ", missing.Take(5))}");
        foreach (var key in read.GroupBy(v => v.Split(':')[0]))
        {
            var sequence = key.Select(v => int.Parse(v.Split(':')[2], CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(sequence.Order(), sequence);
        }
    }

    public override string ToString() => $"acknowledged {Acknowledged}";

    private async Task WriteAsync(EventStreamWriter<string> writer, int k)
    {
        var key = "key-" + k.ToString(CultureInfo.InvariantCulture);
        for (var seq = 0; seq < 1_000_000 && !_stop.IsCancellationRequested; seq++)
        {
            var value = $"{key}:0:{seq}";
            _attempted[value] = true;
            try
            {
                await writer.WriteEventAsync(key, value);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _acknowledged[value] = true;
            lock (_acks[k])
            {
                _acks[k].Add(_clock.Elapsed);
            }
        }
    }
}
