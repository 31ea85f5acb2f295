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

    /// <summary>Registers gauges that observe a running segment store.</summary>
    public static void Observe(Func<long> cacheBytes, Func<int> runningContainers)
    {
        Meter.CreateObservableGauge("streams.segmentstore.cache_bytes", cacheBytes, "By", "Bytes held by the read cache.");
        Meter.CreateObservableGauge("streams.segmentstore.containers_running", runningContainers, "{container}", "Containers running in this segment store.");
    }
}
