using System.Diagnostics.Metrics;

namespace Streams.Functions;

/// <summary>
/// A function instance's metrics (meter "Streams.Functions", on /metrics): events handled, batches, failed attempts,
/// dead-lettered events, batch latency, the segments it holds and its group's backlog.
/// </summary>
public sealed class FunctionMetrics : IDisposable
{
    public const string MeterName = "Streams.Functions";

    private readonly Meter _meter = new(MeterName);
    private readonly KeyValuePair<string, object?>[] _tags;
    private long _segments;
    private long _groupUnread = -1;
    private long _instanceUnread = -1;

    public FunctionMetrics(FunctionOptions options)
    {
        _tags = [new("scope", options.Scope), new("group", options.Group)];
        Events = _meter.CreateCounter<long>("streams.function.events", "{event}", "Events the handler processed and the instance committed.");
        Batches = _meter.CreateCounter<long>("streams.function.batches", "{batch}", "Batches the handler processed and the instance committed.");
        Failures = _meter.CreateCounter<long>("streams.function.failures", "{attempt}", "Handler attempts that threw (each is retried, or dead-lettered after the last).");
        DeadLettered = _meter.CreateCounter<long>("streams.function.dead_lettered", "{event}", "Events written to the dead-letter stream after their batch failed every attempt.");
        BatchDuration = _meter.CreateHistogram<double>("streams.function.batch.duration", "s", "From a batch's first attempt to its commit (retries included).");
        _meter.CreateObservableGauge("streams.function.segments", () => new Measurement<long>(Interlocked.Read(ref _segments), _tags), "{segment}",
            "Segments this instance is processing.");
        _meter.CreateObservableGauge("streams.function.lag", ObserveLag, "By",
            "Unread bytes of the function's reader group (of = group) and of the segments this instance holds (of = instance), as the controller last reported them.");
    }

    internal Counter<long> Events { get; }

    internal Counter<long> Batches { get; }

    internal Counter<long> Failures { get; }

    internal Counter<long> DeadLettered { get; }

    internal Histogram<double> BatchDuration { get; }

    internal ReadOnlySpan<KeyValuePair<string, object?>> Tags => _tags;

    internal void SegmentStarted() => Interlocked.Increment(ref _segments);

    internal void SegmentEnded() => Interlocked.Decrement(ref _segments);

    internal void SetLag(long group, long instance)
    {
        Interlocked.Exchange(ref _groupUnread, group);
        Interlocked.Exchange(ref _instanceUnread, instance);
    }

    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<long>> ObserveLag()
    {
        if (Interlocked.Read(ref _groupUnread) is var group and >= 0)
        {
            yield return new Measurement<long>(group, [.. _tags, new("of", "group")]);
            yield return new Measurement<long>(Interlocked.Read(ref _instanceUnread), [.. _tags, new("of", "instance")]);
        }
    }
}
