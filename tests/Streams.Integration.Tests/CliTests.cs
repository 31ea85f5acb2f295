using System.Globalization;
using System.Text.Json;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>The `streams` CLI against a real standalone process, as a user runs it.</summary>
public sealed class CliTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private Task<CliResult> Run(string? stdin, params string[] args) =>
        StreamsProcess.RunAsync([.. args, "--controller", fixture.Server.ControllerUri], stdin);

    [Fact]
    public async Task Create_write_read_describe()
    {
        Assert.Equal(0, (await Run(null, "scope", "create", "cli")).ExitCode);
        var create = await Run(null, "stream", "create", "cli/lines", "--segments", "3");
        Assert.Equal(0, create.ExitCode);
        Assert.Contains("3 segments", create.Stdout);

        var write = await Run("a:first\nb:second\na:third\n", "write", "cli/lines", "--key-separator", ":");
        Assert.Equal(0, write.ExitCode);
        Assert.Contains("Wrote 3 events", write.Stdout);

        var text = await Run(null, "read", "cli/lines", "--from-start");
        Assert.Equal(["first", "second", "third"], text.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());

        var json = await Run(null, "read", "cli/lines", "--from-start", "--format", "json");
        var events = json.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var keyA = events.Where(e => e.GetProperty("key").GetString() == "a").ToList();
        Assert.Equal(["first", "third"], keyA.Select(e => e.GetProperty("value").GetString()));
        Assert.Single(keyA.Select(e => e.GetProperty("segment").GetString()).Distinct());
        Assert.True(keyA[0].GetProperty("offset").GetInt64() < keyA[1].GetProperty("offset").GetInt64());

        var limited = await Run(null, "read", "cli/lines", "--from-start", "--count", "2");
        Assert.Equal(2, limited.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        var describe = await Run(null, "stream", "describe", "cli/lines");
        Assert.Contains("segments: 3", describe.Stdout);
        Assert.Contains("cli/lines/2.#epoch.0", describe.Stdout);
        Assert.Contains("lines", (await Run(null, "stream", "list", "cli")).Stdout);
    }

    [Fact]
    public async Task Scale_split_merge_update_and_describe()
    {
        await Run(null, "scope", "create", "cliscale");
        var create = await Run(null, "stream", "create", "cliscale/s", "--scaling", "fixed:2");
        Assert.Equal(0, create.ExitCode);
        Assert.Contains("2 segments", create.Stdout);

        var split = await Run(null, "stream", "scale", "cliscale/s", "--split", "1:3");
        Assert.Equal(0, split.ExitCode);
        Assert.Contains("to epoch 1", split.Stdout);
        Assert.Contains("cliscale/s/4.#epoch.1", split.Stdout);

        // Segments 0 and 3 do not touch: the refusal says why, and the stream stays at epoch 1.
        var apart = await Run(null, "stream", "scale", "cliscale/s", "--merge", "0,3");
        Assert.Equal(1, apart.ExitCode);
        Assert.Contains("not adjacent", apart.Stderr);
        var unknown = await Run(null, "stream", "scale", "cliscale/s", "--split", "1");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("no segment 1 in its current epoch 1", unknown.Stderr);

        var merge = await Run(null, "stream", "scale", "cliscale/s", "--merge", "3,4");
        Assert.Equal(0, merge.ExitCode);
        Assert.Contains("to epoch 2", merge.Stdout);

        var describe = (await Run(null, "stream", "describe", "cliscale/s")).Stdout;
        Assert.Contains("epoch:    2", describe);
        Assert.Contains("scaling:  fixed: 3 segments", describe);
        Assert.Contains("history:  2 scale(s)", describe);
        Assert.Contains("epoch 2 at ", describe);
        Assert.Contains("(manual)", describe);
        Assert.Contains("cliscale/s/5.#epoch.2", describe);

        var update = await Run(null, "stream", "update", "cliscale/s", "--scaling", "events:1000", "--max-segments", "8");
        Assert.Equal(0, update.ExitCode);
        Assert.Contains("events: 1000/s per segment, factor 2, 1-8 segments", update.Stdout);
        Assert.Contains("epoch:    2", update.Stdout);

        var badPolicy = await Run(null, "stream", "create", "cliscale/t", "--scaling", "bytes:5");
        Assert.Equal(2, badPolicy.ExitCode);
        Assert.Contains("not a scaling kind", badPolicy.Stderr);
    }

    [Fact]
    public async Task Generated_events_and_tail_reads()
    {
        await Run(null, "scope", "create", "gen");
        await Run(null, "stream", "create", "gen/load", "--segments", "2");
        var write = await Run(null, "write", "gen/load", "--count", "5000", "--size", "64", "--key-count", "8");
        Assert.Equal(0, write.ExitCode);
        var read = await Run(null, "read", "gen/load", "--from-start", "--format", "json");
        var keys = read.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("key").GetString()).ToList();
        Assert.Equal(5000, keys.Count);
        Assert.Equal(8, keys.Distinct().Count());

        // Without --from-start a reader only sees what comes after it started: here, nothing.
        Assert.Equal(string.Empty, (await Run(null, "read", "gen/load")).Stdout);
    }

    [Fact]
    public async Task Errors_are_one_line_and_a_nonzero_exit()
    {
        var badName = await Run(null, "stream", "create", "no-slash");
        Assert.Equal(2, badName.ExitCode);
        Assert.StartsWith("error: ", badName.Stderr, StringComparison.Ordinal);
        Assert.Single(badName.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var missing = await Run(null, "stream", "describe", "nope/nothing");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.Stderr);

        var unreachable = await StreamsProcess.RunAsync(["scope", "list", "--controller", $"http://127.0.0.1:{Ports.Free().ToString(CultureInfo.InvariantCulture)}"]);
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("cannot reach", unreachable.Stderr);
    }

    [Fact]
    public async Task Keda_reads_the_segment_count_through_its_own_grpc_contract()
    {
        await Run(null, "scope", "create", "keda");
        await Run(null, "stream", "create", "keda/orders", "--segments", "6");
        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var result = await Node.RunJsonAsync("grpc-client.js", port, "keda", "keda", "orders");
        Assert.True(result.GetProperty("ok").GetBoolean(), result.ToString());
        Assert.True(result.GetProperty("active").GetBoolean());
        Assert.Equal("streams-segments-keda-orders", result.GetProperty("metricName").GetString());
        Assert.Equal(1, result.GetProperty("targetSize").GetInt32());
        Assert.Equal(6, result.GetProperty("value").GetInt32());

        var metrics = await PrometheusText.ScrapeAsync(fixture.Server.MetricsPort, TestContext.Current.CancellationToken);
        Assert.Equal(6, PrometheusText.Value(metrics, "streams_stream_active_segments", ("scope", "keda"), ("stream", "orders")));
        Assert.Equal(6, PrometheusText.Value(metrics, "streams_stream_segments", ("scope", "keda"), ("stream", "orders")));
        Assert.Equal(0, PrometheusText.Value(metrics, "streams_stream_hot_keys", ("scope", "keda"), ("stream", "orders")));

        // Sealed, the stream has no active segments: nothing for readers to scale on.
        await Run(null, "stream", "seal", "keda/orders");
        var sealedStream = await Node.RunJsonAsync("grpc-client.js", port, "keda", "keda", "orders");
        Assert.False(sealedStream.GetProperty("active").GetBoolean());
        Assert.Equal(0, sealedStream.GetProperty("value").GetInt32());
        metrics = await PrometheusText.ScrapeAsync(fixture.Server.MetricsPort, TestContext.Current.CancellationToken);
        Assert.Equal(0, PrometheusText.Value(metrics, "streams_stream_active_segments", ("scope", "keda"), ("stream", "orders")));
        Assert.Equal(0, PrometheusText.Value(metrics, "streams_stream_segments", ("scope", "keda"), ("stream", "orders")));

        var invalid = await Node.RunJsonAsync("grpc-client.js", port, "kedaMissing");
        Assert.Equal(3, invalid.GetProperty("code").GetInt32());
        Assert.Contains("'scope' and the 'stream'", invalid.GetProperty("details").GetString());
    }

    [Fact]
    public async Task Reader_group_members_share_a_sealed_stream_and_exit_when_it_is_read()
    {
        await Run(null, "scope", "create", "cligroup");
        await Run(null, "stream", "create", "cligroup/jobs", "--segments", "4");
        var lines = string.Concat(Enumerable.Range(0, 400).Select(i => string.Create(CultureInfo.InvariantCulture, $"k{i % 16}:e{i}\n")));
        Assert.Equal(0, (await Run(lines, "write", "cligroup/jobs", "--key-separator", ":")).ExitCode);
        Assert.Equal(0, (await Run(null, "stream", "seal", "cligroup/jobs")).ExitCode);

        var create = await Run(null, "readergroup", "create", "cligroup/workers", "--stream", "cligroup/jobs", "--heartbeat-ms", "500", "--session-timeout-ms", "5000");
        Assert.Equal(0, create.ExitCode);
        Assert.Contains("Created reader group cligroup/workers over cligroup/jobs", create.Stdout);
        Assert.Contains("already exists", (await Run(null, "readergroup", "create", "cligroup/workers", "--stream", "cligroup/jobs")).Stdout);
        var before = (await Run(null, "readergroup", "describe", "cligroup/workers")).Stdout;
        Assert.Contains("reads cligroup/jobs", before);
        Assert.Contains("heartbeat 500 ms, session timeout 5000 ms", before);
        Assert.Contains("readers: none", before);
        Assert.Equal(4, before.Split('\n').Count(l => l.Contains("Unassigned", StringComparison.Ordinal) && l.Contains("committed 0", StringComparison.Ordinal)));
        Assert.Contains("cligroup/jobs/3.#epoch.0", before);

        // A member that stops after 10 events commits them: the next members start after them.
        var first = await Run(null, "read", "cligroup/jobs", "--group", "workers", "--reader", "first", "--count", "10");
        Assert.Equal(0, first.ExitCode);
        var firstEvents = Events(first);
        Assert.Equal(10, firstEvents.Count);

        // Two members at once: each exits 0 once the group has read everything; together they read the rest, once each.
        var a = Run(null, "read", "cligroup/jobs", "--group", "cligroup/workers", "--reader", "a");
        var b = Run(null, "read", "cligroup/jobs", "--group", "cligroup/workers", "--reader", "b");
        var results = await Task.WhenAll(a, b);
        Assert.All(results, r => Assert.Equal((0, string.Empty), (r.ExitCode, r.Stderr)));
        List<string> all = [.. firstEvents, .. Events(results[0]), .. Events(results[1])];
        Assert.Equal(400, all.Count);
        Assert.Equal(Enumerable.Range(0, 400).Select(i => $"e{i}").Order(), all.Order());

        var describe = await Run(null, "readergroup", "describe", "cligroup/workers");
        Assert.Equal(0, describe.ExitCode);
        Assert.Contains("ended (everything read)", describe.Stdout);
        Assert.Contains("unread 0 bytes", describe.Stdout);
        Assert.Equal(["workers"], (await Run(null, "readergroup", "list", "cligroup")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var misuse = await Run(null, "read", "cligroup/jobs", "--group", "workers", "--from-start");
        Assert.Equal(2, misuse.ExitCode);
        Assert.Contains("leave out --from-start", misuse.Stderr);
        Assert.Equal(2, (await Run(null, "readergroup", "describe", "no-slash")).ExitCode);

        Assert.Contains("Deleted reader group cligroup/workers", (await Run(null, "readergroup", "delete", "cligroup/workers")).Stdout);
        Assert.Contains("does not exist", (await Run(null, "readergroup", "delete", "cligroup/workers")).Stdout);
        Assert.Equal(string.Empty, (await Run(null, "readergroup", "list", "cligroup")).Stdout);

        static List<string> Events(CliResult r) => [.. r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }

    [Fact]
    public async Task Retention_that_follows_consumption_and_a_group_that_holds_it_back_are_set_and_shown()
    {
        await Run(null, "scope", "create", "clihold");
        var created = await Run(null, "stream", "create", "clihold/s", "--retention-consumed", "min=90s,max=1GiB");
        Assert.Equal(0, created.ExitCode);
        var described = (await Run(null, "stream", "describe", "clihold/s")).Stdout;
        Assert.Contains("retain:   until checkpointed by the groups that hold retention (at least 90 s, at most 1,073,741,824 bytes)", described);

        var group = await Run(null, "readergroup", "create", "clihold/archive", "--stream", "clihold/s", "--checkpoint-every", "5s", "--hold-retention");
        Assert.Equal(0, group.ExitCode);
        Assert.Contains("checkpoint every 5 s; holds back retention until checkpointed", (await Run(null, "readergroup", "describe", "clihold/archive")).Stdout);

        var bad = await Run(null, "stream", "update", "clihold/s", "--retention-consumed", "most=1d");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("min=VALUE or max=VALUE", bad.Stderr);
        Assert.Contains("retain:   until checkpointed by the groups that hold retention", (await Run(null, "stream", "update", "clihold/s", "--retention-consumed", "unbounded")).Stdout);
        Assert.Equal(2, (await Run(null, "readergroup", "create", "clihold/fast", "--stream", "clihold/s", "--checkpoint-every", "10ms")).ExitCode);
    }
}
