using System.Diagnostics.Metrics;
using System.Diagnostics.Tracing;

namespace Streams.Hosting;

/// <summary>
/// Every garbage-collection pause of this process as a histogram (<c>streams.process.gc.pause</c>, seconds), so
/// /metrics gives pause percentiles, where the runtime's own metrics give only the total paused time. A pause runs
/// from the runtime's "suspend execution engine" event to its "restart execution engine end" event, read in process
/// from the runtime's event source (GC keyword, informational: a few events per collection).
/// </summary>
internal sealed class GcPauseListener : EventListener
{
    public const string MeterName = "Streams.Process";

    /// <summary>Bucket bounds (seconds): from 50 µs, where a gen0 pause of a small heap lies, up to 2 s.</summary>
    public static readonly double[] Buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const EventKeywords GcKeyword = (EventKeywords)0x1;

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<double> Pause = Meter.CreateHistogram<double>(
        "streams.process.gc.pause", "s", "Garbage-collection pauses of this process (execution suspended to resumed).");

    private long _suspendedAt = -1;

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == RuntimeSource)
        {
            EnableEvents(eventSource, EventLevel.Informational, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        switch (eventData.EventName)
        {
            case "GCSuspendEEBegin_V1":
                Interlocked.Exchange(ref _suspendedAt, eventData.TimeStamp.Ticks);
                break;
            case "GCRestartEEEnd_V1":
                var suspendedAt = Interlocked.Exchange(ref _suspendedAt, -1);
                if (suspendedAt >= 0)
                {
                    Pause.Record(TimeSpan.FromTicks(eventData.TimeStamp.Ticks - suspendedAt).TotalSeconds);
                }

                break;
        }
    }
}
