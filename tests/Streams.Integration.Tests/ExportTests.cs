using System.Globalization;
using System.Text;
using System.Text.Json;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// `streams export` on real processes: a stream scaled over several epochs exported to Parquet and to Arrow IPC, read
/// back by DuckDB and by the JavaScript apache-arrow, matches a plain `streams read` event for event, in the
/// documented order (segment id, then offset), in batches of the size asked for; cuts bound it; ranges handed to
/// other processes export the same rows; bad input fails with one clear line.
/// </summary>
public sealed class ExportTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const int Keys = 7;

    private Task<CliResult> Run(string? stdin, params string[] args) =>
        StreamsProcess.RunAsync([.. args, "--controller", fixture.Server.ControllerUri], stdin);

    private async Task<CliResult> Ok(string? stdin, params string[] args)
    {
        var result = await Run(stdin, args);
        Assert.True(result.ExitCode == 0, $"streams {string.Join(' ', args)} exited {result.ExitCode}: {result.Stderr}");
        return result;
    }

    /// <summary>Events first to last: key k(i mod 7), a JSON payload with id i.</summary>
    private static string Lines(int first, int count) =>
        string.Concat(Enumerable.Range(first, count).Select(i => $"k{i % Keys}|{{\"id\":{i},\"price\":{i}.25,\"note\":\"event {i}\"}}\n"));

    private static long? IdOf(string payload) =>
        JsonDocument.Parse(payload).RootElement.TryGetProperty("id", out var id) ? id.GetInt64() : null;

    /// <summary>A stream written over three epochs: 2 segments, a split of segment 1, a merge of 0 and 2.</summary>
    private async Task<int> ScaledStreamAsync(string scope)
    {
        await Ok(null, "scope", "create", scope);
        await Ok(null, "stream", "create", $"{scope}/s", "--segments", "2");
        await Ok(Lines(0, 400), "write", $"{scope}/s", "--key-separator", "|");
        await Ok(null, "stream", "scale", $"{scope}/s", "--split", "1");
        await Ok(Lines(400, 300), "write", $"{scope}/s", "--key-separator", "|");
        await Ok(null, "stream", "scale", $"{scope}/s", "--merge", "0,2");
        await Ok(Lines(700, 300), "write", $"{scope}/s", "--key-separator", "|");
        return 1000;
    }

    [Fact]
    public async Task An_export_of_a_scaled_stream_matches_a_plain_read_event_for_event_in_parquet_and_arrow()
    {
        using var dir = new TempDirectory("export");
        var events = await ScaledStreamAsync("exp");
        var describe = await Ok(null, "stream", "describe", "exp/s");
        Assert.Contains("epoch:    2", describe.Stdout);
        var read = ExportFiles.InExportOrder((await Ok(null, "read", "exp/s", "--from-start", "--format", "json")).Stdout, IdOf);
        Assert.Equal(events, read.Count);
        Assert.Equal(5, read.Select(r => r.Segment).Distinct().Count());

        var parquet = await Ok(null, "export", "exp/s", "--format", "parquet", "--out", dir.Sub("s.parquet"), "--json-fields", "id,price,note", "--batch-rows", "64");
        var arrow = await Ok(null, "export", "exp/s", "--format", "arrow", "--out", dir.Sub("s.arrow"), "--json-fields", "id,price,note", "--batch-rows", "64", "--parallelism", "2");

        Assert.Contains($"Exported {events:N0} events", parquet.Stdout);
        Assert.Contains("from 5 segment ranges", parquet.Stdout);
        Assert.Contains("JSON fields: id:int64, price:float64, note:string", parquet.Stdout);
        Assert.Equal(string.Empty, parquet.Stderr + arrow.Stderr); // no progress when stderr is not a terminal
        var (parquetRows, parquetTypes, rowGroups) = ExportFiles.ReadParquet(dir.Sub("s.parquet"));
        var (arrowRows, arrowTypes, batches) = await ExportFiles.ReadArrowAsync(dir.Sub("s.arrow"));
        Assert.Equal(read, parquetRows);
        Assert.Equal(read, arrowRows);
        Assert.Equal(["segment:VARCHAR", "offset:BIGINT", "routing_key:VARCHAR", "payload:BLOB", "id:BIGINT", "price:DOUBLE", "note:VARCHAR"], parquetTypes);
        Assert.Equal(["segment:Utf8", "offset:Int64", "routing_key:Utf8", "payload:Binary", "id:Int64", "price:Float64", "note:Utf8"], arrowTypes);
        // Batches never span more than 64 rows: each range's rows are cut into batches as they come.
        Assert.InRange(rowGroups, (events + 63) / 64, (events + 63) / 64 + 5);
        Assert.InRange(batches, (events + 63) / 64, (events + 63) / 64 + 5);
        // Per-key order across the epochs: each key's ids rise in file order.
        foreach (var key in parquetRows.GroupBy(r => r.Key))
        {
            var ids = key.Select(r => r.Id!.Value).ToList();
            Assert.Equal(ids.Order(), ids);
        }
    }

    [Fact]
    public async Task An_export_between_two_cuts_holds_exactly_the_events_written_between_them()
    {
        using var dir = new TempDirectory("export-cuts");
        await Ok(null, "scope", "create", "expcut");
        await Ok(null, "stream", "create", "expcut/s", "--segments", "2");
        await Ok(Lines(0, 200), "write", "expcut/s", "--key-separator", "|");
        var from = (await Ok(null, "stream", "cut", "expcut/s")).Stdout.Trim();
        await Ok(null, "stream", "scale", "expcut/s", "--split", "0");
        await Ok(Lines(200, 300), "write", "expcut/s", "--key-separator", "|");
        var to = (await Ok(null, "stream", "cut", "expcut/s")).Stdout.Trim();
        await Ok(Lines(500, 100), "write", "expcut/s", "--key-separator", "|");

        await Ok(null, "export", "expcut/s", "--from", from, "--to", to, "--format", "parquet", "--out", dir.Sub("between.parquet"), "--json-fields", "id:int64");

        var (rows, _, _) = ExportFiles.ReadParquet(dir.Sub("between.parquet"));
        Assert.Equal(Enumerable.Range(200, 300).Select(i => (long?)i), rows.Select(r => r.Id).Order());
        var all = ExportFiles.InExportOrder((await Ok(null, "read", "expcut/s", "--from-start", "--format", "json")).Stdout, IdOf);
        Assert.Equal(all.Where(r => r.Id is >= 200 and < 500), rows);
    }

    [Fact]
    public async Task Ranges_listed_once_and_exported_by_two_worker_processes_give_the_rows_of_one_export()
    {
        using var dir = new TempDirectory("export-workers");
        await ScaledStreamAsync("expw");
        var listed = JsonDocument.Parse((await Ok(null, "export", "expw/s", "--list-ranges")).Stdout).RootElement.EnumerateArray().Select(e => e.GetRawText()).ToList();
        Assert.Equal(5, listed.Count);
        File.WriteAllText(dir.Sub("a.json"), $"[{string.Join(',', listed.Take(2))}]");
        File.WriteAllText(dir.Sub("b.json"), $"[{string.Join(',', listed.Skip(2))}]");

        await Task.WhenAll(
            Ok(null, "export", "expw/s", "--ranges", dir.Sub("a.json"), "--format", "parquet", "--out", dir.Sub("a.parquet"), "--json-fields", "id:int64"),
            Ok(null, "export", "expw/s", "--ranges", dir.Sub("b.json"), "--format", "parquet", "--out", dir.Sub("b.parquet"), "--json-fields", "id:int64"));
        await Ok(null, "export", "expw/s", "--format", "parquet", "--out", dir.Sub("all.parquet"), "--json-fields", "id:int64");

        var shares = ExportFiles.ReadParquet(dir.Sub("a.parquet")).Rows.Concat(ExportFiles.ReadParquet(dir.Sub("b.parquet")).Rows);
        Assert.Equal(ExportFiles.ReadParquet(dir.Sub("all.parquet")).Rows, shares);
    }

    [Fact]
    public async Task Bad_input_gets_one_clear_line_and_a_non_zero_exit_and_leaves_no_file()
    {
        using var dir = new TempDirectory("export-bad");
        await Ok(null, "scope", "create", "expbad");
        await Ok(null, "stream", "create", "expbad/s", "--segments", "2");
        await Ok(Lines(0, 10), "write", "expbad/s", "--key-separator", "|");
        var outFile = dir.Sub("x.parquet");

        (string[] Args, string Message)[] cases =
        [
            (["--format", "parquet", "--out", outFile, "--from", "zero=1"], "--from: 'zero=1' is not segment-id=offset"),
            (["--format", "parquet", "--out", outFile, "--to", "0=5"], "does not cover every routing key"),
            (["--format", "parquet", "--out", outFile, "--to", "0=0,1=0,77=3"], "which the stream does not have"),
            (["--format", "parquet", "--out", outFile, "--to", "0=1000000,1=0"], "beyond its length"),
            (["--format", "csv", "--out", outFile], "unknown --format 'csv': use arrow or parquet"),
            (["--out", outFile], "give --format arrow or --format parquet"),
            (["--format", "arrow"], "give --out FILE"),
            (["--format", "arrow", "--out", dir.Sub("no/such/dir/x.arrow")], "cannot write --out"),
            (["--format", "arrow", "--out", outFile, "--json-fields", "a:decimal"], "unknown type 'decimal'"),
            (["--format", "arrow", "--out", outFile, "--batch-bytes", "lots"], "--batch-bytes: 'lots' is not a size"),
            (["--format", "arrow", "--out", outFile, "--batch-rows", "0"], "BatchRows must be between"),
        ];
        foreach (var (args, message) in cases)
        {
            var result = await Run(null, ["export", "expbad/s", .. args]);
            Assert.True(result.ExitCode != 0, $"export {string.Join(' ', args)} exited 0");
            Assert.Contains(message, result.Stderr);
            Assert.StartsWith("error: ", result.Stderr);
            Assert.DoesNotContain("   at ", result.Stderr);
        }

        var missing = await Run(null, "export", "expbad/nothere", "--format", "arrow", "--out", outFile);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("nothere", missing.Stderr);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public async Task An_export_after_a_restart_reads_the_stream_from_tier2()
    {
        using var dir = new TempDirectory("export-tier2");
        var environment = new Dictionary<string, string> { ["STREAMS__SEGMENTSTORE__TIER2FLUSHAGE"] = "00:00:01", ["STREAMS__SEGMENTSTORE__TIER2FLUSHSIZE"] = "256KiB" };
        string[] args = ["standalone", "--data-dir", dir.Sub("data"), "--tier2", "file://" + dir.Sub("tier2")];
        var server = await StreamsProcess.StartOnFreePortsAsync(args, environment);
        var payloads = Enumerable.Range(0, 2000).Select(i => $"{{\"id\":{i},\"fill\":\"{new string((char)('a' + (i % 26)), 2000)}\"}}").ToList();
        try
        {
            await using (var client = ProcessTestClients.Create(server.ControllerUri))
            {
                await using var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "tier", 3);
                await Task.WhenAll(payloads.Select((p, i) => writer.WriteEventAsync("key-" + (i % 16).ToString(CultureInfo.InvariantCulture), p)));
            }

            await WaitUntilFlushedAsync(server);
            await server.DisposeAsync();
            // A fresh process: nothing of the stream is in its cache, and its log holds nothing Tier 2 does not.
            server = await StreamsProcess.StartOnFreePortsAsync(args, environment);
            var before = Tier2ReadBytes(await PrometheusText.ScrapeAsync(server.MetricsPort));

            var export = await StreamsProcess.RunAsync(["export", "tier/events", "--format", "arrow", "--out", dir.Sub("t.arrow"), "--json-fields", "id", "--controller", server.ControllerUri]);

            Assert.True(export.ExitCode == 0, export.Stderr);
            var readFromTier2 = Tier2ReadBytes(await PrometheusText.ScrapeAsync(server.MetricsPort)) - before;
            var written = payloads.Sum(p => (long)Encoding.UTF8.GetByteCount(p));
            Assert.True(readFromTier2 >= written, $"The export read {readFromTier2} bytes from Tier 2 for {written} bytes of payloads.");
            var (rows, _, _) = await ExportFiles.ReadArrowAsync(dir.Sub("t.arrow"));
            Assert.Equal(payloads, rows.OrderBy(r => r.Id).Select(r => r.Payload));
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static double Tier2ReadBytes(string metrics) =>
        PrometheusText.Value(metrics, "streams_segmentstore_tier2_read_bytes_total") ?? 0;

    private static async Task WaitUntilFlushedAsync(StreamsProcess server)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        double? unflushed;
        do
        {
            await Task.Delay(250);
            unflushed = PrometheusText.Value(await PrometheusText.ScrapeAsync(server.MetricsPort), "streams_segmentstore_tier2_unflushed_bytes");
        }
        while (unflushed is not 0 && DateTime.UtcNow < deadline);
        Assert.True(unflushed == 0, $"{unflushed} bytes were still not in Tier 2 after 60 s.");
        // The log truncation that follows the flush, so that a restart replays nothing Tier 2 already has.
        await Task.Delay(TimeSpan.FromSeconds(2));
    }
}
