using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Common.Diagnostics;

namespace Streams.Cli.Bench;

/// <summary>
/// Writes to a fresh stream for a fixed time from several writers, each keeping a bounded number of events
/// unacknowledged, and measures throughput and ack latency (write call to durable acknowledgement).
/// </summary>
internal sealed class WriteBench(StreamsClient client, BenchSettings settings)
{
    private readonly LatencyHistogram _latency = new();
    private long _events;
    private long _errors;
    private volatile bool _measuring;

    public long Events => Interlocked.Read(ref _events);

    public LatencyHistogram Latency => _latency;

    /// <summary>The stream written (scope "bench"), once <see cref="RunAsync"/> has created it.</summary>
    public string? Stream { get; private set; }

    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>True if the run was cut short (Ctrl-C, SIGTERM): the figures cover the time until then.</summary>
    public bool Interrupted { get; private set; }

    /// <summary>
    /// Creates the stream, runs the writers (first for the warm-up, unmeasured: connections, JIT, caches), then for
    /// the measured duration, reporting progress once a second.
    /// </summary>
    public async Task<(double Seconds, long Events)> RunAsync(Action<double, long, LatencyHistogram> progress, CancellationToken cancellationToken)
    {
        var stream = "bench-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "-" + Random.Shared.Next(1000, 9999).ToString(CultureInfo.InvariantCulture);
        Stream = stream;
        await client.Streams.CreateScopeAsync("bench", cancellationToken);
        await client.Streams.CreateStreamAsync("bench", stream, StreamConfig.Fixed(settings.Segments), cancellationToken);

        var payload = new byte[settings.EventSize];
        Random.Shared.NextBytes(payload);
        var keys = Enumerable.Range(0, settings.Keys).Select(i => "key-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(settings.Warmup + settings.Duration);
        var writers = Enumerable.Range(0, settings.Writers).Select(w => RunWriterAsync(stream, payload, keys, w, stop.Token)).ToArray();
        var all = Task.WhenAll(writers);
        var interrupted = Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        await Task.WhenAny(all, interrupted, Task.Delay(settings.Warmup, CancellationToken.None));
        _measuring = true;
        var started = Stopwatch.StartNew();
        while (!all.IsCompleted && !cancellationToken.IsCancellationRequested)
        {
            await Task.WhenAny(all, interrupted, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
            progress(started.Elapsed.TotalSeconds, Events, _latency);
        }

        // Interrupted: report what was measured until now, without waiting for the writes still in flight.
        Interrupted = cancellationToken.IsCancellationRequested;
        var seconds = started.Elapsed.TotalSeconds;
        if (!Interrupted)
        {
            await all;
            seconds = started.Elapsed.TotalSeconds;
        }

        return (seconds, Events);
    }

    /// <summary>Seals and deletes the bench stream (best effort: the numbers stand either way).</summary>
    public async Task CleanUpAsync()
    {
        if (Stream is not { } stream)
        {
            return;
        }

        try
        {
            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(Interrupted ? 2 : 30));
            await client.Streams.SealStreamAsync("bench", stream, cleanup.Token);
            await client.Streams.DeleteStreamAsync("bench", stream, cleanup.Token);
        }
        catch (Exception e) when (e is StreamsException or OperationCanceledException)
        {
        }
    }

    private async Task RunWriterAsync(string stream, byte[] payload, string[] keys, int index, CancellationToken stop)
    {
        await using var writer = await client.CreateWriterAsync("bench", stream, Serializers.Bytes, new EventWriterOptions { Linger = settings.Linger });
        using var window = new SemaphoreSlim(settings.Inflight);
        var next = index;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await window.WaitAsync(stop);
                var start = Stopwatch.GetTimestamp();
                var write = writer.WriteEventAsync(keys[next++ % keys.Length], payload, CancellationToken.None);
                _ = write.ContinueWith(
                    (t, s) =>
                    {
                        if (t.IsCompletedSuccessfully)
                        {
                            if (_measuring)
                            {
                                _latency.Record((long)Stopwatch.GetElapsedTime((long)s!).TotalMicroseconds);
                                Interlocked.Increment(ref _events);
                            }
                        }
                        else
                        {
                            Interlocked.Increment(ref _errors);
                        }

                        window.Release();
                    },
                    start,
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }

        // Wait for everything in flight, so every counted event is acknowledged.
        for (var i = 0; i < settings.Inflight; i++)
        {
            await window.WaitAsync(CancellationToken.None);
        }
    }
}
