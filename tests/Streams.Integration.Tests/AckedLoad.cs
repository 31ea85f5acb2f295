using System.Collections.Concurrent;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Integration.Tests;

/// <summary>
/// A write load for fault tests: several tasks write keyed events ("key:writer:sequence") through one writer and
/// record which were attempted and which were acknowledged. <see cref="Verify"/> then checks what a reader got back:
/// every acknowledged event present, nothing duplicated, nothing that was never written, per-key order kept.
/// Bounded in count and time.
/// </summary>
internal sealed class AckedLoad
{
    private readonly ConcurrentDictionary<string, bool> _acknowledged = new();
    private readonly ConcurrentDictionary<string, bool> _attempted = new();
    private readonly CancellationTokenSource _stop;
    private readonly Task[] _writers;
    private int _failed;
    private Exception? _firstFailure;

    private readonly string _padding;

    private AckedLoad(EventStreamWriter<string> writer, int writers, int keysPerWriter, TimeSpan maxDuration, int padding)
    {
        _padding = padding > 0 ? ":" + new string('p', padding) : "";
        _stop = new CancellationTokenSource(maxDuration);
        _writers = Enumerable.Range(0, writers).Select(w => Task.Run(() => WriteAsync(writer, w, keysPerWriter))).ToArray();
    }

    public int Acknowledged => _acknowledged.Count;

    public int Attempted => _attempted.Count;

    /// <summary>Writes that completed with an error (the writer gave up on them); they may or may not be stored.</summary>
    public int Failed => Volatile.Read(ref _failed);

    /// <summary>Why the first failed write failed, or null.</summary>
    public Exception? FirstFailure => Volatile.Read(ref _firstFailure);

    public IReadOnlySet<string> AcknowledgedEvents => _acknowledged.Keys.ToHashSet();

    /// <param name="writer">The writer the load goes through.</param>
    /// <param name="writers">Concurrent writing tasks.</param>
    /// <param name="keysPerWriter">Routing keys per task.</param>
    /// <param name="maxDuration">The load stops by itself after this long.</param>
    /// <param name="padding">Characters appended to every event (to move more bytes).</param>
    public static AckedLoad Start(EventStreamWriter<string> writer, int writers = 4, int keysPerWriter = 4, TimeSpan? maxDuration = null, int padding = 0) =>
        new(writer, writers, keysPerWriter, maxDuration ?? TimeSpan.FromSeconds(60), padding);

    /// <summary>Waits until at least <paramref name="count"/> events are acknowledged; false if that did not happen in time.</summary>
    public async Task<bool> WaitForAcknowledgedAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Acknowledged < count && DateTime.UtcNow < deadline && !_stop.IsCancellationRequested)
        {
            await Task.Delay(20);
        }

        return Acknowledged >= count;
    }

    /// <summary>Stops writing and waits for every outstanding write to complete or fail.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_writers).WaitAsync(timeout);
    }

    /// <summary>Reads the whole stream with a new reader.</summary>
    public static async Task<List<(string Value, string? Key, string Segment)>> ReadAllAsync(StreamsClient client, string scope, string stream)
    {
        var read = new List<(string Value, string? Key, string Segment)>();
        await foreach (var e in client.CreateReader(scope, stream, Serializers.Utf8).ReadAllAsync())
        {
            read.Add((e.Value, e.RoutingKey, e.Position.Segment));
        }

        return read;
    }

    /// <summary>Asserts that <paramref name="read"/> holds every acknowledged event once, in per-key order, and nothing foreign.</summary>
    public void Verify(IReadOnlyList<(string Value, string? Key, string Segment)> read)
    {
        var values = read.Select(r => r.Value).ToList();
        var duplicates = values.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} events were read more than once, e.g. {string.Join(", ", duplicates.Take(5))}");
        var foreign = values.Where(v => !_attempted.ContainsKey(v)).ToList();
        Assert.True(foreign.Count == 0, $"{foreign.Count} events were read that were never written, e.g. {string.Join(", ", foreign.Take(5))}");
        var missing = AcknowledgedEvents.Except(values).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged events were lost, e.g. {string.Join(", ", missing.Take(5))}");

        foreach (var key in read.GroupBy(r => r.Key))
        {
            Assert.Single(key.Select(r => r.Segment).Distinct());
            foreach (var writerEvents in key.GroupBy(r => r.Value.Split(':')[1]))
            {
                var sequence = writerEvents.Select(r => int.Parse(r.Value.Split(':')[2], CultureInfo.InvariantCulture)).ToList();
                Assert.Equal(sequence.Order(), sequence);
            }
        }
    }

    public override string ToString() =>
        $"attempted {Attempted}, acknowledged {Acknowledged}, failed {Failed}" + (FirstFailure is { } e ? $" (first: {e.GetType().Name}: {e.Message})" : "");

    private async Task WriteAsync(EventStreamWriter<string> writer, int w, int keysPerWriter)
    {
        var pending = new List<Task>();
        for (var seq = 0; seq < 1_000_000 && !_stop.IsCancellationRequested; seq++)
        {
            var key = "key-" + ((w * keysPerWriter) + (seq % keysPerWriter)).ToString(CultureInfo.InvariantCulture);
            var value = $"{key}:{w}:{seq}{_padding}";
            _attempted[value] = true;
            var write = writer.WriteEventAsync(key, value);
            pending.Add(write.ContinueWith(
                t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        _acknowledged[value] = true;
                    }
                    else
                    {
                        Interlocked.CompareExchange(ref _firstFailure, t.Exception?.GetBaseException(), null);
                        Interlocked.Increment(ref _failed);
                    }
                },
                TaskScheduler.Default));
            if (pending.Count >= 256)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }

        await Task.WhenAll(pending);
    }
}
