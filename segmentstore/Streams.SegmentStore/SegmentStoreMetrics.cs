using System.Diagnostics.Metrics;

namespace Streams.SegmentStore;

/// <summary>The segment store's instruments (meter "Streams.SegmentStore"), exported on /metrics and through OTLP.</summary>
internal static class SegmentStoreMetrics
{
    public const string MeterName = "Streams.SegmentStore";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> AppendedBytes = Meter.CreateCounter<long>("streams.segmentstore.appended_bytes", "By", "Event bytes made durable.");

    public static readonly Counter<long> AppendedBlocks = Meter.CreateCounter<long>("streams.segmentstore.appended_blocks", "{block}", "Append blocks made durable.");

    public static readonly Counter<long> Frames = Meter.CreateCounter<long>("streams.segmentstore.log_frames", "{frame}", "Frames written to the durable log.");

    public static readonly Histogram<double> FrameLatency = Meter.CreateHistogram<double>("streams.segmentstore.log_write_latency", "ms", "Time from handing a frame to the durable log until it is durable.");

    public static readonly Counter<long> ReadBytes = Meter.CreateCounter<long>("streams.segmentstore.read_bytes", "By", "Bytes returned to readers.");

    public static readonly Counter<long> CacheMisses = Meter.CreateCounter<long>("streams.segmentstore.cache_misses", "{frame}", "Reads that had to load a frame from the durable log.");

    public static readonly Counter<long> Tier2WrittenBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2_written_bytes", "By", "Segment bytes written to Tier 2 as chunks.");

    public static readonly Counter<long> Tier2FlushedBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2_flushed_bytes", "By", "Segment bytes whose move to Tier 2 is durably recorded.");

    public static readonly Counter<long> Tier2ReadBytes = Meter.CreateCounter<long>("streams.segmentstore.tier2_read_bytes", "By", "Chunk bytes read back from Tier 2.");

    public static readonly Counter<long> Tier2Errors = Meter.CreateCounter<long>("streams.segmentstore.tier2_errors", "{error}", "Failed rounds of the storage writer (retried with back-off).");

    /// <summary>Registers gauges that observe a running segment store.</summary>
    public static void Observe(Func<long> cacheBytes, Func<int> runningContainers, Func<long> unflushedBytes, Func<long> chunkCacheBytes)
    {
        Meter.CreateObservableGauge("streams.segmentstore.tier2_unflushed_bytes", unflushedBytes, "By", "Accepted segment bytes not yet in Tier 2 (held by Tier 1).");
        Meter.CreateObservableGauge("streams.segmentstore.tier2_cache_bytes", chunkCacheBytes, "By", "Bytes of Tier 2 chunks held by the chunk cache.");
        Meter.CreateObservableGauge("streams.segmentstore.cache_bytes", cacheBytes, "By", "Bytes held by the read cache.");
        Meter.CreateObservableGauge("streams.segmentstore.containers_running", runningContainers, "{container}", "Containers running in this segment store.");
    }
}
