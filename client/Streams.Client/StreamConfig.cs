namespace Streams.Client;

/// <summary>How a stream is created.</summary>
public sealed record StreamConfig
{
    /// <summary>Number of segments (fixed scaling): the parallelism of writers and readers. Ignored when <see cref="Scaling"/> is set.</summary>
    public int SegmentCount { get; init; } = 1;

    /// <summary>How the segment count is decided; null means fixed at <see cref="SegmentCount"/>.</summary>
    public ScalingPolicy? Scaling { get; init; }

    /// <summary>How much data the stream keeps; null keeps everything.</summary>
    public RetentionPolicy? Retention { get; init; }

    /// <summary>A stream with a fixed number of segments.</summary>
    public static StreamConfig Fixed(int segmentCount) => new() { SegmentCount = segmentCount };
}

/// <summary>
/// How much data a stream keeps. The controller truncates the stream at cuts it records periodically, so at least
/// the configured time or size stays readable.
/// </summary>
public sealed record RetentionPolicy
{
    private RetentionPolicy(TimeSpan? time, long? sizeBytes)
    {
        Time = time;
        SizeBytes = sizeBytes;
    }

    /// <summary>Keep what was written in the last <see cref="Time"/>.</summary>
    public TimeSpan? Time { get; }

    /// <summary>Keep at least the last <see cref="SizeBytes"/> bytes.</summary>
    public long? SizeBytes { get; }

    /// <summary>Keep at least what was written in the last <paramref name="time"/>.</summary>
    public static RetentionPolicy ByTime(TimeSpan time) =>
        time > TimeSpan.Zero ? new(time, null) : throw new ArgumentOutOfRangeException(nameof(time), "Retention time must be positive.");

    /// <summary>Keep at least the last <paramref name="bytes"/> bytes.</summary>
    public static RetentionPolicy BySize(long bytes) =>
        bytes > 0 ? new(null, bytes) : throw new ArgumentOutOfRangeException(nameof(bytes), "Retention size must be positive.");

    /// <summary>
    /// Retention that follows consumption: keep data until every reader group subscribed to the stream
    /// (<see cref="ReaderGroups.ReaderGroupConfig.RetentionFollowsCheckpoints"/>) has checkpointed past it, but always
    /// the last <paramref name="minTime"/> and <paramref name="minBytes"/>, and never more than
    /// <paramref name="maxTime"/> or <paramref name="maxBytes"/> (null: no bound).
    /// </summary>
    public static RetentionPolicy FollowingConsumption(TimeSpan? minTime = null, long? minBytes = null, TimeSpan? maxTime = null, long? maxBytes = null) =>
        new(null, null) { Consumption = new ConsumptionBounds(minTime, minBytes, maxTime, maxBytes) };

    /// <summary>The bounds of retention that follows consumption, or null for a time or size policy.</summary>
    public ConsumptionBounds? Consumption { get; private init; }
}

/// <summary>The minimums and maximums of retention that follows consumption (null: no bound).</summary>
public sealed record ConsumptionBounds(TimeSpan? MinTime, long? MinBytes, TimeSpan? MaxTime, long? MaxBytes);

/// <summary>
/// A position in a stream: an offset in each of its segments (by segment id). Truncating at it drops what came before;
/// a reader group reads from a start cut to an end cut, and a checkpoint is one cut per stream.
/// </summary>
public sealed record StreamCut(string Scope, string Stream, IReadOnlyDictionary<long, long> Positions)
{
    /// <summary>"scope/stream", as reader group configurations name streams.</summary>
    internal string StreamName => $"{Scope}/{Stream}";

    /// <summary>The wire form.</summary>
    internal Contracts.Controller.StreamCut ToContract()
    {
        var cut = new Contracts.Controller.StreamCut { Scope = Scope, Stream = Stream };
        foreach (var (segment, offset) in Positions)
        {
            cut.Positions[segment] = offset;
        }

        return cut;
    }

    /// <summary>The SDK form of a cut the controller sent.</summary>
    internal static StreamCut From(Contracts.Controller.StreamCut cut) => new(cut.Scope, cut.Stream, cut.Positions.ToDictionary(p => p.Key, p => p.Value));
}

/// <summary>A segment of a stream and the routing-key range [KeyStart, KeyEnd) it owns.</summary>
public sealed record SegmentDescription(string Name, long Id, double KeyStart, double KeyEnd);

/// <summary>A stream as the controller describes it.</summary>
public sealed record StreamDescription(
    string Scope,
    string Stream,
    int SegmentCount,
    bool IsSealed,
    int Epoch,
    IReadOnlyList<SegmentDescription> ActiveSegments,
    DateTimeOffset CreatedAt)
{
    /// <summary>How much data the stream keeps; null keeps everything.</summary>
    public RetentionPolicy? Retention { get; init; }

    /// <summary>How the segment count is decided.</summary>
    public ScalingPolicy Scaling { get; init; } = ScalingPolicy.Fixed(1);

    /// <summary>The scale in progress, or null.</summary>
    public ScaleTransitionDescription? Transition { get; init; }

    /// <summary>The latest scales, oldest first (the controller keeps the last 32).</summary>
    public IReadOnlyList<ScaleEventDescription> History { get; init; } = [];

    /// <summary>Key ranges whose load sits in one routing-key bucket.</summary>
    public IReadOnlyList<HotKeyDescription> HotKeys { get; init; } = [];
}
