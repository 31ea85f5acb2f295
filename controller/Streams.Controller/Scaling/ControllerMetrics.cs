using System.Diagnostics.Metrics;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// The scaling signal as gauges (meter "Streams.Controller"): each stream's active segment count and whether it is
/// sealed, labelled by scope and stream.
/// </summary>
public sealed class ControllerMetrics : IDisposable
{
    public const string MeterName = "Streams.Controller";

    private readonly Meter _meter = new(MeterName);

    public ControllerMetrics(ControllerService controller)
    {
        _meter.CreateObservableGauge("streams.stream.active_segments", () => Measure(controller, r => r.IsOpen ? r.ActiveSegments.Count : 0), "{segment}",
            "Active segments of a stream (0 once sealed): the number of readers that can work on it in parallel.");
        // No unit: a unit of "1" would make Prometheus name it streams_stream_sealed_ratio.
        _meter.CreateObservableGauge("streams.stream.sealed", () => Measure(controller, r => r.State is StreamRecordState.Sealed ? 1 : 0),
            description: "1 if the stream is sealed, else 0.");
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<int>> Measure(ControllerService controller, Func<StreamRecord, int> value) =>
        controller.KnownStreams.Select(r => new Measurement<int>(value(r), new KeyValuePair<string, object?>("scope", r.Scope), new KeyValuePair<string, object?>("stream", r.Stream)));
}
