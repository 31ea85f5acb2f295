using System.Diagnostics.Metrics;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// The scaling signal as gauges (meter "Streams.Controller"): each stream's segment count, whether it is sealed and
/// its hot keys, labelled by scope and stream; each reader group's backlog, labelled by scope and group; and the scales
/// the policy made.
/// </summary>
public sealed class ControllerMetrics : IDisposable
{
    public const string MeterName = "Streams.Controller";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _scaleEvents;

    /// <param name="controller">Whose known streams the gauges show.</param>
    /// <param name="loads">Where the hot keys are (none without it).</param>
    /// <param name="groups">Whose reader groups' backlogs the gauges show (none without it).</param>
    public ControllerMetrics(ControllerService controller, ISegmentLoads? loads = null, ReaderGroupService? groups = null)
    {
        _meter.CreateObservableGauge("streams.readergroup.unread", () => MeasureGroups(groups, b => b.UnreadBytes), "By",
            "What a reader group still has to read: over its segments not completed, their length (or end cut) minus the committed offset (leading controller).");
        _meter.CreateObservableGauge("streams.readergroup.backlogged_segments", () => MeasureGroups(groups, b => b.BackloggedSegments), "{segment}",
            "Segments of a reader group with unread bytes: the most readers the backlog can keep busy (leading controller).");
        _meter.CreateObservableCounter("streams.readergroup.record_writes", () => (groups?.RecordWrites ?? []).Select(g => new Measurement<long>(g.Writes,
                new KeyValuePair<string, object?>("scope", g.Scope), new KeyValuePair<string, object?>("group", g.Group))), "{write}",
            "Writes of a reader group's record to the metadata store by the leading controller (membership, assignments, commits at most once a second).");
        _meter.CreateObservableGauge("streams.stream.active_segments", () => Measure(controller, r => r.IsOpen ? r.ActiveSegments.Count : 0), "{segment}",
            "Active segments of a stream (0 once sealed): the number of readers that can work on it in parallel.");
        // Read from the record on every scrape, so it shows a new epoch as soon as the controller recorded it.
        _meter.CreateObservableGauge("streams.stream.segments", () => Measure(controller, r => r.IsOpen ? r.ActiveSegments.Count : 0), "{segment}",
            "Segments of a stream's current epoch (0 once sealed): the KEDA scaler's segment metric.");
        // No unit: a unit of "1" would make Prometheus name it streams_stream_sealed_ratio.
        _meter.CreateObservableGauge("streams.stream.sealed", () => Measure(controller, r => r.State is StreamRecordState.Sealed ? 1 : 0),
            description: "1 if the stream is sealed, else 0.");
        _meter.CreateObservableGauge("streams.stream.hot_keys", () => Measure(controller, r => loads?.HotKeys(r.Scope, r.Stream).Count ?? 0), "{key}",
            "Key ranges of a stream whose load sits in one routing-key bucket, so the policy does not split them (leading controller).");
        _scaleEvents = _meter.CreateCounter<long>("streams.stream.scale_events", "{scale}",
            "Splits and merges the scaling policy asked for and the scale workflow made (kind = split or merge).");
    }

    /// <summary>Counts the splits and merges of one applied plan.</summary>
    public void RecordScale(string scope, string stream, int splits, int merges)
    {
        if (splits > 0)
        {
            _scaleEvents.Add(splits, new("scope", scope), new("stream", stream), new("kind", "split"));
        }

        if (merges > 0)
        {
            _scaleEvents.Add(merges, new("scope", scope), new("stream", stream), new("kind", "merge"));
        }
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<long>> MeasureGroups(ReaderGroupService? groups, Func<GroupBacklog, long> value) =>
        (groups?.Backlogs ?? []).Select(g => new Measurement<long>(value(g.Backlog), new KeyValuePair<string, object?>("scope", g.Scope), new KeyValuePair<string, object?>("group", g.Group)));

    private static IEnumerable<Measurement<int>> Measure(ControllerService controller, Func<StreamRecord, int> value) =>
        controller.KnownStreams.Select(r => new Measurement<int>(value(r), new KeyValuePair<string, object?>("scope", r.Scope), new KeyValuePair<string, object?>("stream", r.Stream)));
}
