using System.Text.Json;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>`streams bench --standalone --json` as a script runs it: stdout is one JSON document, whatever the server logs.</summary>
public sealed class BenchCommandTests
{
    [Fact]
    public async Task Closed_loop_prints_only_the_json_result()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--duration", "2", "--warmup", "0.5", "--json"]);
        var result = ParseResult(run);

        Assert.Equal("closed-loop", result.GetProperty("mode").GetString());
        Assert.Equal("Raw", result.GetProperty("transport").GetString());
        Assert.Equal(JsonValueKind.Null, result.GetProperty("targetRate").ValueKind);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("openLoop").ValueKind);
        AssertSaneLatencies(result);
        Assert.Contains("Closed loop", run.Stderr);
    }

    [Fact]
    public async Task Open_loop_over_grpc_sends_the_schedule_and_measures_from_it()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--duration", "2", "--warmup", "0.5", "--rate", "2000", "--transport", "Grpc", "--json"]);
        var result = ParseResult(run);

        Assert.Equal("open-loop", result.GetProperty("mode").GetString());
        Assert.Equal("Grpc", result.GetProperty("transport").GetString());
        Assert.Equal(2000, result.GetProperty("targetRate").GetDouble());
        AssertSaneLatencies(result);
        var open = result.GetProperty("openLoop");
        var sent = open.GetProperty("sent").GetInt64();
        // 2 s at 2,000 events/s: every event due in the measured time is sent, or counted as never sent.
        Assert.InRange(sent + open.GetProperty("unsent").GetInt64(), 3_998, 4_002);
        Assert.Equal(sent, result.GetProperty("events").GetInt64());
        Assert.InRange(open.GetProperty("sentLate").GetInt64(), 0, sent);
        Assert.True(open.GetProperty("achievedRate").GetDouble() > 0);
        Assert.Contains("Open loop", run.Stderr);
    }

    [Fact]
    public async Task A_rate_that_is_not_positive_is_refused()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--rate", "0"]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--rate", run.Stderr);
        Assert.Equal(string.Empty, run.Stdout);
    }

    private static JsonElement ParseResult(CliResult run)
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Stderr}");
        // JsonDocument.Parse throws on anything before or after the one document, such as a log line.
        using var document = JsonDocument.Parse(run.Stdout);
        return document.RootElement.Clone();
    }

    private static void AssertSaneLatencies(JsonElement result)
    {
        Assert.True(result.GetProperty("events").GetInt64() > 0, result.ToString());
        Assert.Equal(0, result.GetProperty("errors").GetInt64());
        Assert.Equal("standalone", result.GetProperty("server").GetString());
        var latency = result.GetProperty("ackLatencyMs");
        double P(string name) => latency.GetProperty(name).GetDouble();
        Assert.True(P("p50") > 0, latency.ToString());
        Assert.True(P("p50") <= P("p90") && P("p90") <= P("p99") && P("p99") <= P("p999") && P("p999") <= P("max"), latency.ToString());
    }
}
