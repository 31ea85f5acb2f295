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
    public async Task Group_readers_and_a_function_read_every_written_event_and_the_coordination_is_counted()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--duration", "1", "--warmup", "0", "--segments", "4", "--group-readers", "2", "--function", "--json"], timeout: TimeSpan.FromSeconds(120));
        var result = ParseResult(run);

        // Every event the stream holds (the warm-up's too) is read by each way of reading it.
        var group = result.GetProperty("groupRead");
        var events = group.GetProperty("handSplitBefore").GetProperty("events").GetInt64();
        Assert.True(events >= result.GetProperty("events").GetInt64());
        Assert.Equal(events, group.GetProperty("group").GetProperty("events").GetInt64());
        Assert.Equal(events, group.GetProperty("handSplitAfter").GetProperty("events").GetInt64());
        Assert.Equal(events, result.GetProperty("function").GetProperty("events").GetInt64());
        Assert.Equal((2, 4), (group.GetProperty("readers").GetInt32(), group.GetProperty("segments").GetInt32()));
        Assert.InRange(group.GetProperty("groupRecordWrites").GetInt64(), 1, 100);
        Assert.True(result.GetProperty("function").GetProperty("batches").GetInt64() > 0);
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

    [Fact]
    public async Task Progress_lines_show_the_live_segment_count_of_the_stream()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--duration", "2", "--warmup", "0.5", "--scaling", "fixed:3", "--segments", "7", "--json"]);
        var result = ParseResult(run);

        // fixed:3 wins over --segments; the count shown is the one the controller describes.
        Assert.Equal(3, result.GetProperty("segments").GetInt32());
        Assert.Equal(3, result.GetProperty("liveSegments").GetInt32());
        Assert.Equal("fixed:3", result.GetProperty("scaling").GetString());
        var progress = run.Stderr.Split('\n').Where(line => line.Contains(" ev/s ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(progress);
        Assert.All(progress, line => Assert.EndsWith(" 3 segments", line.TrimEnd()));
    }

    [Fact]
    public async Task A_rate_policy_parses_and_the_stream_starts_at_its_segment_count()
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--duration", "1", "--warmup", "0", "--scaling", "events:500", "--segments", "2", "--json"]);
        var result = ParseResult(run);

        Assert.Equal("events:500", result.GetProperty("scaling").GetString());
        Assert.Equal(2, result.GetProperty("segments").GetInt32());
        Assert.Contains(" 2 segments", run.Stderr);
    }

    [Theory]
    [InlineData("events")]
    [InlineData("events:0")]
    [InlineData("bytes:100")]
    [InlineData("kbytes:1.5")]
    public async Task A_scaling_policy_that_does_not_parse_is_refused(string policy)
    {
        var run = await StreamsProcess.RunAsync(["bench", "--standalone", "--scaling", policy]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--scaling '" + policy + "'", run.Stderr);
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
