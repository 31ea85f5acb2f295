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

        Assert.Equal("Raw", result.GetProperty("transport").GetString());
        AssertSaneLatencies(result);
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
        var latency = result.GetProperty("ackLatencyMs");
        double P(string name) => latency.GetProperty(name).GetDouble();
        Assert.True(P("p50") > 0, latency.ToString());
        Assert.True(P("p50") <= P("p90") && P("p90") <= P("p99") && P("p99") <= P("p999") && P("p999") <= P("max"), latency.ToString());
    }
}
