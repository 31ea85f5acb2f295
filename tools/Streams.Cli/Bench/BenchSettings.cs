namespace Streams.Cli.Bench;

/// <summary>What one benchmark run does.</summary>
internal sealed record BenchSettings(
    TimeSpan Warmup,
    TimeSpan Duration,
    int EventSize,
    int Writers,
    int Keys,
    int Segments,
    int Inflight,
    TimeSpan Linger);
