namespace Streams.Client;

/// <summary>How a stream is created.</summary>
public sealed record StreamConfig
{
    /// <summary>Number of segments (fixed scaling): the parallelism of writers and readers.</summary>
    public int SegmentCount { get; init; } = 1;

    /// <summary>A stream with a fixed number of segments.</summary>
    public static StreamConfig Fixed(int segmentCount) => new() { SegmentCount = segmentCount };
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
    DateTimeOffset CreatedAt);
