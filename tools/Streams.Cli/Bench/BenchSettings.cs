namespace Streams.Cli.Bench;

/// <summary>
/// What one benchmark run does. Rate is null for the closed loop (each writer sends as soon as its window has room),
/// otherwise the open loop's target in events per second across all writers.
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
    double? Rate = null)
{
    public bool OpenLoop => Rate is not null;
}
