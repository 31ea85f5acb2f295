using System.Diagnostics.Metrics;

namespace Streams.SegmentStore;

/// <summary>
/// The segment store's instruments (meter "Streams.SegmentStore"), in OpenTelemetry's naming: dotted names without
/// the unit, base units (bytes, seconds). Prometheus shows them with the unit and "_total" appended
/// (docs/metrics.md lists every one).
/// </summary>
public static class SegmentStoreMetrics
{
    public const string MeterName = "Streams.SegmentStore";

    /// <summary>
    /// Bucket bounds of <see cref="LogWriteDuration"/>, in seconds: 0.1 ms to 5 s. A healthy write (a bookie group
    /// commit on a local disk) takes 0.5–5 ms; the upper buckets show a slow or replaced bookie.
    /// </summary>
    public static readonly double[] LogWriteBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> Appends = Meter.CreateCounter<long>("streams.segmentstore.appends", "{event}", "Events made durable.");

    public static readonly Counter<long> AppendedBytes = Meter.CreateCounter<long>("streams.segmentstore.appended", "By", "Event bytes (with their framing) made durable.");

    public static readonly Counter<long> AppendedBlocks = Meter.CreateCounter<long>("streams.segmentstore.appended_blocks", "{block}", "Append blocks made durable.");

    public static readonly Counter<long> LogFrames = Meter.CreateCounter<long>("streams.segmentstore.log.frames", "{frame}", "Frames written to the durable log (Tier 1).");

    public static readonly Histogram<double> LogWriteDuration = Meter.CreateHistogram<double>("streams.segmentstore.log.write.duration", "s",
        "Time from handing a frame to the durable log until it is durable.");

    public static readonly Counter<long> ReadBytes = Meter.CreateCounter<long>("streams.segmentstore.read", "By", "Bytes returned to readers.");

    public static readonly UpDownCounter<long> ReplyBytes = Meter.CreateUpDownCounter<long>("streams.segmentstore.connection.unsent", "By",
        "Bytes held by replies not yet flushed to their clients' sockets (read answers count the cached frames they pin), over all connections.");

    public static readonly Counter<long> CacheMisses = Meter.CreateCounter<long>("streams.segmentstore.cache.misses", "{frame}", "Reads that had to load a frame from the durable log.");

    public static readonly Counter<long> Tier2WrittenBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2.written", "By", "Segment bytes written to Tier 2 as chunks.");

    public static readonly Counter<long> Tier2FlushedBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2.flushed", "By", "Segment bytes whose move to Tier 2 is durably recorded.");

    public static readonly Counter<long> Tier2ReadBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2.read", "By", "Chunk bytes read back from Tier 2.");

    public static readonly Counter<long> Tier2Errors = Meter.CreateCounter<long>("streams.segmentstore.tier2.errors", "{error}", "Failed rounds of the storage writer (retried with back-off).");

    /// <summary>
    /// Load reports sent to the controller, by outcome: accepted, refused (the receiver does not lead) or failed. The
    /// rates themselves are not metrics: one series per segment would grow with every segment ever created.
    /// </summary>
    public static readonly Counter<long> LoadReports = Meter.CreateCounter<long>("streams.segmentstore.load.reports", "{report}",
        "Load reports sent to the controller, by outcome (accepted, refused, failed).");

    public static readonly Counter<long> WriterEvictions = Meter.CreateCounter<long>("streams.segmentstore.writers.evicted", "{writer}",
        "Writer records forgotten because their segment held the most writers it keeps (the longest idle go first).");

    /// <summary>
    /// Registers gauges that observe a running segment store, on a meter of their own that the returned handle disposes
    /// (a stopped store is no longer observed; a process that starts a store again observes only the new one).
    /// </summary>
    public static IDisposable Observe(Func<long> cacheBytes, Func<int> runningContainers, Func<long> unflushedBytes, Func<long> chunkCacheBytes)
    {
        var meter = new Meter(MeterName);
        meter.CreateObservableGauge("streams.segmentstore.tier2.unflushed", unflushedBytes, "By", "Accepted segment bytes not yet in Tier 2 (held by Tier 1).");
        meter.CreateObservableGauge("streams.segmentstore.tier2.cache.size", chunkCacheBytes, "By", "Bytes of Tier 2 chunks held by the chunk cache.");
        meter.CreateObservableGauge("streams.segmentstore.cache.size", cacheBytes, "By", "Bytes held by the read cache.");
        meter.CreateObservableGauge("streams.segmentstore.containers.running", runningContainers, "{container}", "Containers running in this segment store.");
        return meter;
    }
}
