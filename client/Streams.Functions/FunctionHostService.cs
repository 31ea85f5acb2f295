using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Streams.Client;
using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Functions;

/// <summary>Whether the instance is reading (readiness) and has not failed (liveness).</summary>
public sealed class FunctionState
{
    public bool Reading { get; internal set; }

    /// <summary>Why the instance stopped for good, or null while it runs.</summary>
    public string? Failure { get; internal set; }

    /// <summary>True once the group has read everything (a bounded group, or sealed streams) and the instance is done.</summary>
    public bool Ended { get; internal set; }
}

/// <summary>
/// Runs a function over a reader group: joins the group as one reader, hands each segment's events to the handler in
/// micro-batches (at most <see cref="FunctionOptions.Concurrency"/> segments at once, one batch at a time per segment,
/// in order), commits a batch once the handler returned and its outputs are durable, retries a failing batch with
/// back-off and then sends it to the dead-letter stream. On shutdown (SIGTERM) it stops reading, lets queued events
/// finish within the drain timeout, commits, and leaves the group so its segments move at once.
/// </summary>
internal sealed class FunctionHostService<T> : BackgroundService
{
    /// <summary>A segment's worker and output writers go after this long without an event.</summary>
    private static readonly TimeSpan IdleClose = TimeSpan.FromSeconds(30);

    private readonly IStreamFunction<T> _handler;
    private readonly IEventSerializer<T> _serializer;
    private readonly FunctionOptions _options;
    private readonly FunctionMetrics _metrics;
    private readonly FunctionState _state;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly ResiliencePipeline _retry;
    private readonly RateLimiter? _limiter;
    private readonly Dictionary<string, SegmentWork> _segments = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _failed = new();

    public FunctionHostService(IStreamFunction<T> handler, IEventSerializer<T> serializer, FunctionOptions options, FunctionMetrics metrics, FunctionState state, ILogger<FunctionHostService<T>> logger)
    {
        _handler = handler;
        _serializer = serializer;
        _options = options;
        _metrics = metrics;
        _state = state;
        _logger = logger;
        _slots = new SemaphoreSlim(options.Concurrency, options.Concurrency);
        _retry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            // A handler's own timeout (an OperationCanceledException) is a failure like any other; only the drain's is not.
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && !(e is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested)),
            // Without a dead-letter stream a failing batch is retried until it succeeds (its segment waits).
            MaxRetryAttempts = options.DeadLetterStream is null ? int.MaxValue : options.MaxAttempts - 1,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = options.InitialBackoff,
            MaxDelay = options.MaxBackoff,
            OnRetry = args =>
            {
                _metrics.Failures.Add(1, _metrics.Tags);
                _logger.Log(args.AttemptNumber + 1 >= options.MaxAttempts ? LogLevel.Error : LogLevel.Warning,
                    "A batch failed (attempt {Attempt}): {Error}; retrying in {Delay}.", args.AttemptNumber + 1, args.Outcome.Exception?.Message, args.RetryDelay);
                return ValueTask.CompletedTask;
            },
        }).Build();
        _limiter = options.RateLimit > 0
            ? new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = Math.Max(options.BatchSize, (int)Math.Ceiling(options.RateLimit / 10)),
                TokensPerPeriod = Math.Max(1, (int)Math.Ceiling(options.RateLimit / 10)),
                ReplenishmentPeriod = TimeSpan.FromMilliseconds(100),
                QueueLimit = int.MaxValue,
                AutoReplenishment = true,
            })
            : null;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (Exception e) when (!stoppingToken.IsCancellationRequested)
        {
            _state.Failure = e.Message;
            _logger.LogCritical(e, "The function stopped: {Error}", e.Message);
            throw;
        }
        finally
        {
            _state.Reading = false;
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        await using var client = StreamsClient.Create(new StreamsClientOptions { ControllerUri = _options.Controller });
        var config = ReaderGroupConfig.For([.. _options.Streams]) with { HeartbeatInterval = _options.HeartbeatInterval, SessionTimeout = _options.SessionTimeout };
        await client.CreateReaderGroupAsync(_options.Scope, _options.Group, config, stoppingToken);
        var reader = client.CreateReader(_options.Scope, _options.Group, _options.ReaderId, _serializer, new GroupReaderOptions { AutoCommit = false });
        await using var deadLetters = _options.DeadLetterStream is { } dlq ? new DeadLetters(client, _options, dlq, _serializer) : null;

        // Processing goes on after reading stops (the drain), until the drain timeout cancels it.
        using var processing = new CancellationTokenSource();
        using var lagLoop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var lag = ReportLagAsync(client, lagLoop.Token);
        _state.Reading = true;
        _logger.LogInformation("Function reading group {Scope}/{Group} as {Reader}.", _options.Scope, _options.Group, _options.ReaderId);
        try
        {
            using var reading = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, _failed.Token);
            await foreach (var e in reader.ReadAsync(reading.Token))
            {
                while (true)
                {
                    var work = Work(client, reader, deadLetters, e.Position.Segment, processing.Token);
                    try
                    {
                        await work.Queue.Writer.WriteAsync(e, reading.Token);
                        break;
                    }
                    catch (ChannelClosedException)
                    {
                        // Its worker closed it for idleness just now: the next one takes the event.
                        work.Closed = true;
                    }
                }
            }

            _state.Ended = true;
            _logger.LogInformation("The group has read everything: the function instance is done.");
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested || _failed.IsCancellationRequested)
        {
            _logger.LogInformation("Stopping: draining what was read (at most {Timeout}).", _options.DrainTimeout);
        }
        finally
        {
            _state.Reading = false;
            foreach (var work in _segments.Values)
            {
                work.Queue.Writer.TryComplete();
            }

            var workers = Task.WhenAll(_segments.Values.Select(w => w.Worker));
            if (await Task.WhenAny(workers, Task.Delay(stoppingToken.IsCancellationRequested ? _options.DrainTimeout : Timeout.InfiniteTimeSpan, CancellationToken.None)) != workers)
            {
                _logger.LogWarning("The drain timeout passed: batches still in progress are not committed (they are handled again elsewhere).");
            }

            await processing.CancelAsync();
            await workers.ContinueWith(_ => { }, TaskScheduler.Default);
            await lagLoop.CancelAsync();
            await lag;

            // Leaving carries the final commits: the segments go to other instances at once.
            await reader.DisposeAsync();
        }
    }

    private SegmentWork Work(StreamsClient client, GroupReader<T> reader, DeadLetters? deadLetters, string segment, CancellationToken processing)
    {
        var previous = _segments.GetValueOrDefault(segment);
        if (previous is { Closed: false })
        {
            return previous;
        }

        // Bounded: a slow handler holds back reading, not memory. A segment's next worker starts once the one before
        // it has finished, so the segment's batches stay in order.
        var work = new SegmentWork(segment, Channel.CreateBounded<EventRead<T>>(new BoundedChannelOptions(2 * _options.BatchSize) { SingleReader = true, SingleWriter = true }));
        work.Worker = Task.Run(async () =>
        {
            await (previous?.Worker ?? Task.CompletedTask);
            await RunSegmentAsync(work, new SegmentOutputs(client, _options.Scope, _options.Group, segment, _logger), reader, deadLetters, processing);
        }, CancellationToken.None);
        _segments[segment] = work;
        return work;
    }

    private async Task RunSegmentAsync(SegmentWork work, SegmentOutputs outputs, GroupReader<T> reader, DeadLetters? deadLetters, CancellationToken processing)
    {
        _metrics.SegmentStarted();
        await using var _ = outputs;
        try
        {
            var events = new List<EventRead<T>>(_options.BatchSize);
            while (await WaitOrCloseAsync(work, processing))
            {
                events.Clear();
                await FillAsync(work.Queue.Reader, events, processing);
                await _slots.WaitAsync(processing);
                try
                {
                    if (_limiter is not null)
                    {
                        using var lease = await _limiter.AcquireAsync(Math.Min(events.Count, Math.Max(_options.BatchSize, (int)Math.Ceiling(_options.RateLimit / 10))), processing);
                    }

                    await ProcessAsync(work.Segment, events, outputs, reader, deadLetters, processing);
                }
                finally
                {
                    _slots.Release();
                }
            }
        }
        catch (OperationCanceledException) when (processing.IsCancellationRequested)
        {
            // The drain timeout passed: what is not committed is handled again by the segment's next reader.
        }
        catch (Exception e)
        {
            // Nothing may wait on this segment's queue for good: the instance fails (its /healthz says so, and its
            // orchestrator restarts it; its segments go to other readers, from their commits).
            _logger.LogCritical(e, "Processing segment {Segment} failed: {Error}", work.Segment, e.Message);
            _state.Failure = $"processing {work.Segment} failed: {e.Message}";
            _failed.Cancel();
        }
        finally
        {
            work.Closed = true;
            work.Queue.Writer.TryComplete();
            _metrics.SegmentEnded();
        }
    }

    /// <summary>
    /// Waits for the segment's next event; after <see cref="IdleClose"/> without one (the segment was completed, moved,
    /// or is quiet) closes the queue, so its output writers are let go; what is still queued is processed first.
    /// </summary>
    private static async Task<bool> WaitOrCloseAsync(SegmentWork work, CancellationToken processing)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(processing);
        idle.CancelAfter(IdleClose);
        try
        {
            return await work.Queue.Reader.WaitToReadAsync(idle.Token);
        }
        catch (OperationCanceledException) when (!processing.IsCancellationRequested)
        {
            work.Closed = true;
            work.Queue.Writer.TryComplete();
            return await work.Queue.Reader.WaitToReadAsync(processing);
        }
    }

    /// <summary>Takes up to a batch: what is queued, then what arrives within the max wait after the first event.</summary>
    private async Task FillAsync(ChannelReader<EventRead<T>> queue, List<EventRead<T>> events, CancellationToken processing)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.MaxWait.TotalSeconds * Stopwatch.Frequency);
        while (events.Count < _options.BatchSize)
        {
            while (events.Count < _options.BatchSize && queue.TryRead(out var e))
            {
                events.Add(e);
            }

            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (events.Count >= _options.BatchSize || left <= TimeSpan.Zero)
            {
                return;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(processing);
            wait.CancelAfter(left);
            try
            {
                if (!await queue.WaitToReadAsync(wait.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException) when (!processing.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task ProcessAsync(string segment, List<EventRead<T>> events, SegmentOutputs outputs, GroupReader<T> reader, DeadLetters? deadLetters, CancellationToken processing)
    {
        var started = Stopwatch.GetTimestamp();
        var batch = events.ToArray();
        var attempt = 0;
        try
        {
            await _retry.ExecuteAsync(async ct =>
            {
                var attemptBatch = new FunctionBatch<T>(segment, batch, ++attempt, outputs);
                try
                {
                    await _handler.HandleAsync(attemptBatch, ct);
                }
                finally
                {
                    // Whatever the attempt handed over is durable (or failed) before the next attempt or the commit.
                    await attemptBatch.WhenWrittenAsync().ContinueWith(_ => { }, TaskScheduler.Default);
                }

                await attemptBatch.WhenWrittenAsync();
            }, processing);
        }
        catch (Exception e) when (!processing.IsCancellationRequested && deadLetters is not null)
        {
            _metrics.Failures.Add(1, _metrics.Tags);
            _logger.LogError("A batch of {Count} events of {Segment} failed {Attempts} times ({Error}): handling its events one by one, the ones that fail go to {Stream}.",
                batch.Length, segment, attempt, e.Message, _options.DeadLetterStream);
            var dead = new List<EventRead<T>>();
            foreach (var single in batch)
            {
                var alone = new FunctionBatch<T>(segment, [single], attempt + 1, outputs);
                try
                {
                    await _handler.HandleAsync(alone, processing);
                    await alone.WhenWrittenAsync();
                }
                catch (Exception failed) when (!processing.IsCancellationRequested)
                {
                    await alone.WhenWrittenAsync().ContinueWith(_ => { }, TaskScheduler.Default);
                    _metrics.Failures.Add(1, _metrics.Tags);
                    _logger.LogError("Event {Segment}@{Offset} failed on its own too ({Error}): to the dead-letter stream.", segment, single.Position.Offset, failed.Message);
                    dead.Add(single);
                }
            }

            await deadLetters.WriteAsync(segment, dead, processing);
            _metrics.DeadLettered.Add(dead.Count, _metrics.Tags);
        }

        try
        {
            reader.Commit(batch[^1]);
        }
        catch (ArgumentException)
        {
            // The segment was assigned again meanwhile (a reset or a rejoin) from an earlier offset: this batch's
            // commit belongs to the old assignment; the new one is handled and committed on its own.
        }

        outputs.Committed();
        _metrics.Events.Add(batch.Length, _metrics.Tags);
        _metrics.Batches.Add(1, _metrics.Tags);
        _metrics.BatchDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _metrics.Tags);
    }

    /// <summary>The group's backlog and this instance's share of it, from the controller every 5 s.</summary>
    private async Task ReportLagAsync(StreamsClient client, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    var group = await client.DescribeReaderGroupAsync(_options.Scope, _options.Group, cancellationToken);
                    var mine = group.Segments.Where(s => s.Owner == _options.ReaderId).Sum(s => s.UnreadBytes);
                    _metrics.SetLag(group.UnreadBytes, mine);
                }
                catch (StreamsException e)
                {
                    _logger.LogDebug("The group's backlog could not be read: {Error}", e.Message);
                }

                await Task.Delay(TimeSpan.FromSeconds(5), cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private sealed class SegmentWork(string segment, Channel<EventRead<T>> queue)
    {
        private volatile bool _closed;

        public string Segment { get; } = segment;

        public Channel<EventRead<T>> Queue { get; } = queue;

        public Task Worker { get; set; } = Task.CompletedTask;

        /// <summary>Its queue takes no more events: the segment's next event starts another worker.</summary>
        public bool Closed { get => _closed; set => _closed = value; }
    }

    /// <summary>
    /// The dead-letter stream's writers, one per input segment under a derived id, each event numbered by its input
    /// offset: a batch dead-lettered again after a crash is stored once.
    /// </summary>
    private sealed class DeadLetters(StreamsClient client, FunctionOptions options, string stream, IEventSerializer<T> serializer) : IAsyncDisposable
    {
        private readonly Dictionary<string, EventStreamWriter<byte[]>> _writers = new(StringComparer.Ordinal);
        private readonly SemaphoreSlim _lock = new(1, 1);

        public async Task WriteAsync(string segment, IReadOnlyList<EventRead<T>> events, CancellationToken cancellationToken)
        {
            if (events.Count == 0)
            {
                return;
            }

            EventStreamWriter<byte[]> writer;
            await _lock.WaitAsync(cancellationToken);
            try
            {
                if (!_writers.TryGetValue(segment, out writer!))
                {
                    var slash = stream.IndexOf('/', StringComparison.Ordinal);
                    writer = _writers[segment] = await client.CreateWriterAsync(stream[..slash], stream[(slash + 1)..], Serializers.Bytes, new EventWriterOptions
                    {
                        WriterId = SegmentOutputs.WriterIdFor(options.Scope, options.Group, segment, "dead-letter:" + stream), StoreRoutingKeys = true,
                    }, cancellationToken);
                }
            }
            finally
            {
                _lock.Release();
            }

            var writes = new List<Task>(events.Count);
            foreach (var e in events)
            {
                var buffer = new ArrayBufferWriter<byte>();
                serializer.Serialize(e.Value, buffer);
                writes.Add(writer.WriteEventAsync(e.RoutingKey, buffer.WrittenSpan.ToArray(), e.Position.Offset, cancellationToken));
            }

            await Task.WhenAll(writes);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var writer in _writers.Values)
            {
                await writer.DisposeAsync();
            }

            _lock.Dispose();
        }
    }
}
