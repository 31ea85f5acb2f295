namespace Streams.Cli.Bench;

/// <summary>
/// What one benchmark run does. Rate is null for the closed loop (each writer sends as soon as its window has room),
/// otherwise the open loop's target in events per second across all writers. Scaling is the stream's policy from
/// <c>--scaling</c> (null: fixed at Segments).
/// </summary>
internal sealed record BenchSettings(
    TimeSpan Warmup,
    TimeSpan Duration,
    int EventSize,
    int Writers,
    int Keys,
    int Segments,
    int Inflight,
    TimeSpan Linger,
    double? Rate = null,
    BenchScaling? Scaling = null)
{
    public bool OpenLoop => Rate is not null;

    /// <summary>The segment count the stream is created with (fixed:N from --scaling, otherwise --segments).</summary>
    public int InitialSegments => Scaling?.InitialSegments(Segments) ?? Segments;
}
