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
/// <remarks>
/// Closed loop (no rate): a writer sends whenever its window has room, and latency runs from the write call. Such a
/// writer slows down with the server, so the time an event would have waited before it could be sent is never seen
/// (coordinated omission): this mode measures capacity, not what a producer with its own pace feels.
/// Open loop (a rate): event j of the run is due at start + j / rate, whatever happened before it, and its latency runs
/// from that intended time. A writer that falls behind sends as fast as it can, and the wait shows in the latency.
/// </remarks>
internal sealed class WriteBench
{
    /// <summary>
    /// An open-loop event sent more than this after its intended time counts as late. A writer sleeps in whole
    /// milliseconds (about 1.1 ms for one), so on time means up to about a millisecond after; an event later than
    /// twice that waited for its writer (a full window, a slow write call) or for a busy CPU.
    /// </summary>
    private static readonly TimeSpan LateThreshold = TimeSpan.FromMilliseconds(2);

    /// <summary>How often the progress display's segment count is refreshed from the controller.</summary>
    private static readonly TimeSpan SegmentPollInterval = TimeSpan.FromSeconds(1);

    private readonly StreamsClient _client;
    private readonly BenchSettings _settings;
    private readonly LatencyRecording _latency;
    private long _measureFrom;
    private long _errors;
    private Loop[] _loops = [];
    private int _liveSegments;

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
    /// then for the measured duration, reporting progress once a second (seconds measured, latencies so far, live
    /// segment count). Returns the measured seconds (until the last
    /// measured event was acknowledged) and the ack latencies of the measured events.
    /// </summary>
    public async Task<(double Seconds, HistogramBase Latency)> RunAsync(Action<double, HistogramBase, int> progress, CancellationToken cancellationToken)
    {
        var stream = "bench-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "-" + Random.Shared.Next(1000, 9999).ToString(CultureInfo.InvariantCulture);
        Stream = stream;
        await _client.Streams.CreateScopeAsync("bench", cancellationToken);
        var config = _settings.Scaling?.ToStreamConfig(_settings.Segments) ?? StreamConfig.Fixed(_settings.Segments);
        await _client.Streams.CreateStreamAsync("bench", stream, config, cancellationToken);
        LiveSegments = config.SegmentCount;

        var payload = new byte[_settings.EventSize];
        Random.Shared.NextBytes(payload);
        var keys = Enumerable.Range(0, _settings.Keys).Select(i => "key-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var options = new EventWriterOptions { Linger = _settings.Linger };
        var writers = await Task.WhenAll(Enumerable.Range(0, _settings.Writers).Select(_ => _client.CreateWriterAsync("bench", stream, Serializers.Bytes, options, cancellationToken)));
        _loops = [.. writers.Select((writer, index) => new Loop(this, index, writer, payload, keys))];

        // The clock starts once every writer is connected, so the warm-up and an open-loop schedule start together.
        var start = Stopwatch.GetTimestamp();
        _measureFrom = start + Ticks(_settings.Warmup);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (!_settings.OpenLoop)
        {
            stop.CancelAfter(_settings.Warmup + _settings.Duration);
        }

        var all = Task.WhenAll(_loops.Select(loop => _settings.OpenLoop ? loop.RunOpenLoopAsync(start, stop.Token) : loop.RunClosedLoopAsync(stop.Token)));
        using var stopWatching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watching = WatchSegmentsAsync(stream, stopWatching.Token);
        var interrupted = Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        await Task.WhenAny(all, interrupted, Task.Delay(_settings.Warmup, CancellationToken.None));
        while (!all.IsCompleted && !cancellationToken.IsCancellationRequested)
        {
            await Task.WhenAny(all, interrupted, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
            progress(MeasuredSeconds(), _latency.Collect(), LiveSegments);
        }

        await stopWatching.CancelAsync();
        await watching;

        // Interrupted: report what was measured until now, without waiting for the writes still in flight.
        Interrupted = cancellationToken.IsCancellationRequested;
        if (!Interrupted)
        {
            await all;
        }

        return (MeasuredSeconds(), _latency.Collect());
    }

    /// <summary>
    /// The stream's active segment count, as the controller last described it (polled about once a second while the
    /// bench runs); the count it was created with until the first answer.
    /// </summary>
    public int LiveSegments
    {
        get => Volatile.Read(ref _liveSegments);
        private set => Volatile.Write(ref _liveSegments, value);
    }

    /// <summary>What the open loop sent against its schedule; null for the closed loop. Call after <see cref="RunAsync"/>.</summary>
    public OpenLoopResult? OpenLoopOutcome()
    {
        if (!_settings.OpenLoop)
        {
            return null;
        }

        var lag = new LongHistogram(LatencyRecording.HighestMicros, LatencyRecording.Precision);
        long sent = 0, late = 0, unsent = 0, lastSend = _measureFrom;
        foreach (var loop in _loops)
        {
            lag.Add(loop.SendLag);
            sent += loop.Sent;
            late += loop.SentLate;
            unsent += loop.Unsent;
            lastSend = Math.Max(lastSend, loop.LastSend);
        }

        // On schedule the last event goes out just before the end: the rate is then the target, not a little above it.
        // Cut short, the run covers the time until then.
        var sendSeconds = Math.Max(Interrupted ? 0 : _settings.Duration.TotalSeconds, Stopwatch.GetElapsedTime(_measureFrom, lastSend).TotalSeconds);
        return new OpenLoopResult(sendSeconds > 0 ? Math.Round(sent / sendSeconds) : 0, sent, late, LateThreshold.TotalMilliseconds, unsent, LatencySummary.From(lag));
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

    /// <summary>
    /// Asks the controller for the stream's segments about once a second until cancelled. A slow or failed answer only
    /// leaves the last count standing: the numbers the bench measures never wait for it.
    /// </summary>
    private async Task WatchSegmentsAsync(string stream, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(SegmentPollInterval);
        try
        {
            do
            {
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(SegmentPollInterval * 5);
                    var description = await _client.Streams.DescribeStreamAsync("bench", stream, timeout.Token);
                    LiveSegments = description.ActiveSegments.Count;
                }
                catch (Exception e) when (e is StreamsException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                }
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private double MeasuredSeconds() => Math.Max(0, Stopwatch.GetElapsedTime(_measureFrom).TotalSeconds);

    /// <summary>One writer: its window of unacknowledged events, its sending loops and its ack callback, and the open-loop figures only it writes (read once it has finished).</summary>
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

        /// <summary>How late the measured events were sent, in microseconds (open loop).</summary>
        public LongHistogram SendLag { get; } = new(LatencyRecording.HighestMicros, LatencyRecording.Precision);

        public long Sent { get; private set; }

        public long SentLate { get; private set; }

        /// <summary>Measured events never sent: the writer was still behind when the run gave up (open loop).</summary>
        public long Unsent { get; private set; }

        public long LastSend { get; private set; }

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

        /// <summary>
        /// Sends this writer's share of the schedule (events index, index + writers, ...), each no earlier than it is
        /// due, until the end of the measured duration; then waits for every ack.
        /// </summary>
        public async Task RunOpenLoopAsync(long start, CancellationToken stop)
        {
            await using var writer = _writer;
            using var window = _window;
            // A thread of its own: Thread.Sleep(1) takes about 1.1 ms, while Task.Delay(1) waits for the runtime's
            // timer queue, about 4 ms on the 2-core benchmark machine, and every event's latency would include that.
            await Task.Factory.StartNew(() => Pace(start, stop), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            await DrainAsync();
        }

        /// <summary>
        /// The open loop's sending, blocking its own thread. A writer still behind one more duration after the end
        /// gives up, and counts what it did not send.
        /// </summary>
        private void Pace(long start, CancellationToken stop)
        {
            var settings = _bench._settings;
            var ticksPerEvent = Stopwatch.Frequency / settings.Rate!.Value;
            var measureFrom = _bench._measureFrom;
            var end = measureFrom + Ticks(settings.Duration);
            var giveUp = end + Ticks(settings.Duration);
            var lateTicks = Ticks(LateThreshold);
            long j = _index;
            try
            {
                for (; ; j += settings.Writers)
                {
                    var intended = start + (long)(j * ticksPerEvent);
                    if (intended >= end)
                    {
                        break;
                    }

                    long now;
                    while ((now = Stopwatch.GetTimestamp()) < intended && !stop.IsCancellationRequested)
                    {
                        // Never early. Sleeps are whole milliseconds, so the events due meanwhile go out together.
                        Thread.Sleep(Math.Max(1, (int)Stopwatch.GetElapsedTime(now, intended).TotalMilliseconds));
                    }

                    // A full window: rather than be woken for every ack (a context switch per event, which caps the
                    // sending well below what the store takes), look again a millisecond later and send what fits.
                    while (!_window.Wait(0, CancellationToken.None))
                    {
                        stop.ThrowIfCancellationRequested();
                        Thread.Sleep(1);
                    }

                    now = Stopwatch.GetTimestamp();
                    if (now >= giveUp)
                    {
                        _window.Release();
                        break;
                    }

                    if (intended >= measureFrom)
                    {
                        Sent++;
                        SentLate += now - intended > lateTicks ? 1 : 0;
                        SendLag.RecordValue(Math.Min((long)Stopwatch.GetElapsedTime(intended, now).TotalMicroseconds, LatencyRecording.HighestMicros));
                        LastSend = now;
                    }

                    Send(intended);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }

            for (; start + (long)(j * ticksPerEvent) < end; j += settings.Writers)
            {
                Unsent += start + (long)(j * ticksPerEvent) >= measureFrom ? 1 : 0;
            }
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
                // The open loop measures the events due in the measured time; the closed loop those acked in it.
                if ((_bench._settings.OpenLoop ? origin : now) >= _bench._measureFrom)
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
