namespace Streams.Cli.Bench;

/// <summary>Ack latency percentiles in milliseconds.</summary>
internal sealed record LatencySummary(double P50, double P95, double P99, double P999, double Max, double Mean);

/// <summary>The outcome of a write benchmark, as printed by <c>--json</c>.</summary>
internal sealed record BenchResult(
    string Mode,
    string Transport,
    int EventSize,
    int Writers,
    int Keys,
    int Segments,
    int Inflight,
    double Seconds,
    long Events,
    long Bytes,
    double EventsPerSecond,
    double MegabytesPerSecond,
    LatencySummary AckLatencyMs,
    long Errors,
    bool Interrupted,
    CatchUpResult? CatchUp = null);

/// <summary>Reading the written stream from the start as fast as possible (<c>--catch-up</c>).</summary>
internal sealed record CatchUpResult(long Events, long Bytes, double Seconds, double EventsPerSecond, double MegabytesPerSecond, double SettleSeconds);

[System.Text.Json.Serialization.JsonSerializable(typeof(BenchResult))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class BenchJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
