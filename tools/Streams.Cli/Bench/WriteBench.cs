using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Cli.Bench;

/// <summary>
/// Writes to a fresh stream for a fixed time from several writers, each keeping a bounded number of events
/// unacknowledged, and measures throughput and ack latency (to the durable acknowledgement).
/// </summary>
internal sealed class WriteBench
{
    private readonly StreamsClient _client;
    private readonly BenchSettings _settings;
    private readonly LatencyRecording _latency;
    private long _measureFrom;
    private long _errors;
    private Loop[] _loops = [];

    public WriteBench(StreamsClient client, BenchSettings settings)
    {
        _client = client;
        _settings = settings;
        _latency = new LatencyRecording(settings.Writers);
    }

    /// <summary>The stream written (scope "bench"), once <see cref="RunAsync"/> has created it.</summary>
    public string? Stream { get; private set; }

    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>True if the run was cut short (Ctrl-C, SIGTERM): the figures cover the time until then.</summary>
    public bool Interrupted { get; private set; }

    /// <summary>
    /// Creates the stream and the writers, runs them (first for the warm-up, unmeasured: connections, JIT, caches),
    /// then for the measured duration, reporting progress once a second. Returns the measured seconds (until the last
    /// measured event was acknowledged) and the ack latencies of the measured events.
    /// </summary>
    public async Task<(double Seconds, HistogramBase Latency)> RunAsync(Action<double, HistogramBase> progress, CancellationToken cancellationToken)
    {
        var stream = "bench-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "-" + Random.Shared.Next(1000, 9999).ToString(CultureInfo.InvariantCulture);
        Stream = stream;
        await _client.Streams.CreateScopeAsync("bench", cancellationToken);
        await _client.Streams.CreateStreamAsync("bench", stream, StreamConfig.Fixed(_settings.Segments), cancellationToken);

        var payload = new byte[_settings.EventSize];
        Random.Shared.NextBytes(payload);
        var keys = Enumerable.Range(0, _settings.Keys).Select(i => "key-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var options = new EventWriterOptions { Linger = _settings.Linger };
        var writers = await Task.WhenAll(Enumerable.Range(0, _settings.Writers).Select(_ => _client.CreateWriterAsync("bench", stream, Serializers.Bytes, options, cancellationToken)));
        _loops = [.. writers.Select((writer, index) => new Loop(this, index, writer, payload, keys))];

        // The clock starts once every writer is connected.
        _measureFrom = Stopwatch.GetTimestamp() + Ticks(_settings.Warmup);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(_settings.Warmup + _settings.Duration);
        var all = Task.WhenAll(_loops.Select(loop => loop.RunClosedLoopAsync(stop.Token)));
        var interrupted = Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        await Task.WhenAny(all, interrupted, Task.Delay(_settings.Warmup, CancellationToken.None));
        while (!all.IsCompleted && !cancellationToken.IsCancellationRequested)
        {
            await Task.WhenAny(all, interrupted, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
            progress(MeasuredSeconds(), _latency.Collect());
        }

        // Interrupted: report what was measured until now, without waiting for the writes still in flight.
        Interrupted = cancellationToken.IsCancellationRequested;
        if (!Interrupted)
        {
            await all;
        }

        return (MeasuredSeconds(), _latency.Collect());
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
            await _client.Streams.SealStreamAsync("bench", stream, cleanup.Token);
            await _client.Streams.DeleteStreamAsync("bench", stream, cleanup.Token);
        }
        catch (Exception e) when (e is StreamsException or OperationCanceledException)
        {
        }
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private double MeasuredSeconds() => Math.Max(0, Stopwatch.GetElapsedTime(_measureFrom).TotalSeconds);

    /// <summary>One writer: its window of unacknowledged events, its sending loop and its ack callback.</summary>
    private sealed class Loop
    {
        private readonly WriteBench _bench;
        private readonly int _index;
        private readonly EventStreamWriter<byte[]> _writer;
        private readonly byte[] _payload;
        private readonly string[] _keys;
        private readonly SemaphoreSlim _window;
        private readonly Action<Task, object?> _onAck;
        private int _next;

        public Loop(WriteBench bench, int index, EventStreamWriter<byte[]> writer, byte[] payload, string[] keys)
        {
            _bench = bench;
            _index = index;
            _writer = writer;
            _payload = payload;
            _keys = keys;
            _next = index;
            _window = new SemaphoreSlim(bench._settings.Inflight);
            _onAck = OnAck;
        }

        /// <summary>Sends whenever the window has room, until <paramref name="stop"/>; then waits for every ack.</summary>
        public async Task RunClosedLoopAsync(CancellationToken stop)
        {
            await using var writer = _writer;
            using var window = _window;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    await _window.WaitAsync(stop);
                    Send(Stopwatch.GetTimestamp());
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }

            await DrainAsync();
        }

        /// <summary>Writes one event (the window already has room for it); <paramref name="origin"/> is where its latency starts.</summary>
        private void Send(long origin)
        {
            var write = _writer.WriteEventAsync(_keys[_next++ % _keys.Length], _payload, CancellationToken.None);
            _ = write.ContinueWith(_onAck, origin, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        private void OnAck(Task write, object? state)
        {
            if (write.IsCompletedSuccessfully)
            {
                var origin = (long)state!;
                var now = Stopwatch.GetTimestamp();
                if (now >= _bench._measureFrom)
                {
                    _bench._latency.Record(_index, origin, now);
                }
            }
            else
            {
                Interlocked.Increment(ref _bench._errors);
            }

            _window.Release();
        }

        /// <summary>Waits for everything in flight, so every counted event is acknowledged.</summary>
        private async Task DrainAsync()
        {
            for (var i = 0; i < _bench._settings.Inflight; i++)
            {
                await _window.WaitAsync(CancellationToken.None);
            }
        }
    }
}
