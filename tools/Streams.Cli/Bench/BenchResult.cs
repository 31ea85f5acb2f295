using HdrHistogram;

namespace Streams.Cli.Bench;

/// <summary>Latency percentiles in milliseconds.</summary>
internal sealed record LatencySummary(double P50, double P90, double P95, double P99, double P999, double Max, double Mean)
{
    /// <summary>Reads a histogram of microseconds; all zeros if it is empty.</summary>
    public static LatencySummary From(HistogramBase micros)
    {
        if (micros.TotalCount == 0)
        {
            return new LatencySummary(0, 0, 0, 0, 0, 0, 0);
        }

        double Ms(double percentile) => Math.Round(Milliseconds(micros, percentile), 3);
        return new LatencySummary(Ms(50), Ms(90), Ms(95), Ms(99), Ms(99.9), Math.Round(micros.GetMaxValue() / 1000.0, 3), Math.Round(micros.GetMean() / 1000.0, 3));
    }

    /// <summary>A percentile of a histogram of microseconds, in milliseconds; 0 if it is empty (where HdrHistogram throws).</summary>
    public static double Milliseconds(HistogramBase micros, double percentile) =>
        micros.TotalCount == 0 ? 0 : micros.GetValueAtPercentile(percentile) / 1000.0;
}

/// <summary>The outcome of a write benchmark, as printed by <c>--json</c>.</summary>
/// <remarks>
/// Mode is <c>closed-loop</c> or <c>open-loop</c>; Server is <c>standalone</c> (in this process) or the controller
/// address; TargetRate is the open loop's events per second across all writers (null for the closed loop). Ack
/// latency runs from the write call (closed loop) or from the event's intended send time (open loop). Segments is
/// the count the stream was created with.
/// </remarks>
internal sealed record BenchResult(
    string Mode,
    string Server,
    string Transport,
    int EventSize,
    int Writers,
    int Keys,
    int Segments,
    int Inflight,
    double? TargetRate,
    double Seconds,
    long Events,
    long Bytes,
    double EventsPerSecond,
    double MegabytesPerSecond,
    LatencySummary AckLatencyMs,
    long Errors,
    bool Interrupted,
    OpenLoopResult? OpenLoop = null,
    CatchUpResult? CatchUp = null)
{
    /// <summary>The stream's scaling policy as given to <c>--scaling</c> (<c>fixed:N</c> without it).</summary>
    public string Scaling { get; init; } = "";

    /// <summary>The stream's active segment count when the run ended (Segments is the count it was created with).</summary>
    public int LiveSegments { get; init; }

    /// <summary><c>--group-readers</c>: the stream read by a reader group and by readers splitting it by hand.</summary>
    public GroupReadResult? GroupRead { get; init; }

    /// <summary><c>--function</c>: the stream handled by one function-host instance.</summary>
    public FunctionBenchResult? Function { get; init; }

    /// <summary><c>--transaction-size</c>: transactions committed concurrently.</summary>
    public TransactionBenchResult? Transactions { get; init; }

    /// <summary><c>--export</c>: the stream exported to Arrow IPC and to Parquet.</summary>
    public ExportBenchResult? Export { get; init; }
}

/// <summary>What an open-loop run sent against its schedule (the events due in the measured time).</summary>
/// <remarks>
/// AchievedRate is events sent per second, the target when every event went out on time; SentLate counts those sent
/// more than LateThresholdMs after they were due; Unsent those never sent (the writers were still behind one duration
/// after the end); SendLagMs is how long after its intended time each event was sent.
/// </remarks>
internal sealed record OpenLoopResult(double AchievedRate, long Sent, long SentLate, double LateThresholdMs, long Unsent, LatencySummary SendLagMs);

/// <summary>Reading the written stream from the start as fast as possible (<c>--catch-up</c>).</summary>
internal sealed record CatchUpResult(long Events, long Bytes, double Seconds, double EventsPerSecond, double MegabytesPerSecond, double SettleSeconds);

/// <summary>One export of the bench stream: rows, segment bytes read, time, rates, the file's size and the Tier 2 bytes read.</summary>
internal sealed record ExportRunResult(string Format, long Events, long Bytes, double Seconds, double EventsPerSecond, double MegabytesPerSecond, long FileBytes, int Batches, long? Tier2ReadBytes);

/// <summary><c>bench --export</c>: the stream exported to Arrow, then to Parquet, after SettleSeconds waiting for Tier 2.</summary>
internal sealed record ExportBenchResult(ExportRunResult Arrow, ExportRunResult Parquet, double SettleSeconds);

[System.Text.Json.Serialization.JsonSerializable(typeof(BenchResult))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class BenchJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
