namespace Streams.Client;

/// <summary>What a stream's segment count follows.</summary>
public enum ScalingKind
{
    /// <summary>A fixed number of segments; it changes only when asked (an update or a manual scale).</summary>
    Fixed,

    /// <summary>Events per second per segment.</summary>
    EventsPerSecond,

    /// <summary>KiB per second per segment.</summary>
    KBytesPerSecond,
}

/// <summary>
/// How a stream's segment count is decided: fixed, or by load, where the controller splits a segment whose rate
/// stays above <see cref="TargetRate"/> into at most <see cref="ScaleFactor"/> pieces and merges adjacent segments
/// whose combined rate is well below it, keeping between <see cref="MinSegments"/> and <see cref="MaxSegments"/>.
/// </summary>
public sealed record ScalingPolicy
{
    private ScalingPolicy(ScalingKind kind, int targetRate, int segmentCount, int scaleFactor, int minSegments, int maxSegments)
    {
        Kind = kind;
        TargetRate = targetRate;
        SegmentCount = segmentCount;
        ScaleFactor = scaleFactor;
        MinSegments = minSegments;
        MaxSegments = maxSegments;
    }

    /// <summary>Fixed, or which rate the count follows.</summary>
    public ScalingKind Kind { get; }

    /// <summary>For a fixed policy, the segment count; for a rate policy, the count it starts with (<see cref="MinSegments"/>).</summary>
    public int SegmentCount { get; }

    /// <summary>The rate per segment a rate policy aims at (events/s or KiB/s); 0 for a fixed policy.</summary>
    public int TargetRate { get; }

    /// <summary>The most segments one split makes (at least 2).</summary>
    public int ScaleFactor { get; }

    /// <summary>The fewest segments a rate policy merges down to.</summary>
    public int MinSegments { get; }

    /// <summary>The most segments a rate policy splits up to.</summary>
    public int MaxSegments { get; }

    /// <summary>Always <paramref name="segmentCount"/> segments.</summary>
    public static ScalingPolicy Fixed(int segmentCount) =>
        segmentCount >= 1 ? new(ScalingKind.Fixed, 0, segmentCount, 2, segmentCount, segmentCount) : throw new ArgumentOutOfRangeException(nameof(segmentCount), "A stream needs at least 1 segment.");

    /// <summary>Scale so that each segment takes about <paramref name="targetEventsPerSecond"/> events per second.</summary>
    public static ScalingPolicy ByEventRate(int targetEventsPerSecond, int scaleFactor = 2, int minSegments = 1, int maxSegments = 64) =>
        ByRate(ScalingKind.EventsPerSecond, targetEventsPerSecond, scaleFactor, minSegments, maxSegments);

    /// <summary>Scale so that each segment takes about <paramref name="targetKBytesPerSecond"/> KiB per second.</summary>
    public static ScalingPolicy ByKBytesRate(int targetKBytesPerSecond, int scaleFactor = 2, int minSegments = 1, int maxSegments = 64) =>
        ByRate(ScalingKind.KBytesPerSecond, targetKBytesPerSecond, scaleFactor, minSegments, maxSegments);

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        ScalingKind.Fixed => $"fixed: {SegmentCount} segments",
        ScalingKind.EventsPerSecond => $"events: {TargetRate}/s per segment, factor {ScaleFactor}, {MinSegments}-{MaxSegments} segments",
        _ => $"kbytes: {TargetRate} KiB/s per segment, factor {ScaleFactor}, {MinSegments}-{MaxSegments} segments",
    };

    private static ScalingPolicy ByRate(ScalingKind kind, int target, int scaleFactor, int minSegments, int maxSegments)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(target, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(scaleFactor, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(minSegments, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSegments, minSegments);
        return new(kind, target, minSegments, scaleFactor, minSegments, maxSegments);
    }
}

/// <summary>A scale in progress: the step it last completed ("" right after it was recorded) and since when.</summary>
public sealed record ScaleTransitionDescription(int FromEpoch, string Step, DateTimeOffset StartedAt, TimeSpan StepAge, IReadOnlyList<long> SealSegmentIds, IReadOnlyList<(double Start, double End)> NewRanges, string Reason);

/// <summary>A completed scale: the epoch it made, when, which segments it sealed and created, and why.</summary>
public sealed record ScaleEventDescription(int Epoch, DateTimeOffset Time, IReadOnlyList<long> SealedSegmentIds, IReadOnlyList<long> CreatedSegmentIds, string Reason);

/// <summary>A key range carrying most of a segment's load in one routing-key bucket (splitting would not spread it).</summary>
public sealed record HotKeyDescription(long SegmentId, double KeyStart, double KeyEnd, double Share);
