using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using HdrHistogram;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using Streams.Cli.Bench;
using Streams.Hosting;
using Streams.Client;
using Streams.Client.Serialization;

namespace Streams.Cli.Commands;

/// <summary>
/// <c>streams bench</c>: write throughput and ack latency against a server, or an in-process standalone; closed loop
/// (as fast as the windows allow) or, with <c>--rate</c>, open loop (events due on a schedule, latency from when each
/// was due). Stdout carries only the result; progress and the in-process server's log go to stderr.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var duration = new Option<double>("--duration") { Description = "Seconds to measure.", DefaultValueFactory = _ => 10 };
        var warmup = new Option<double>("--warmup") { Description = "Seconds to write before measuring (connections, JIT).", DefaultValueFactory = _ => 2 };
        var size = new Option<int>("--size") { Description = "Event size in bytes.", DefaultValueFactory = _ => 100 };
        var writers = new Option<int>("--writers") { Description = "Concurrent writers.", DefaultValueFactory = _ => 4 };
        var keys = new Option<int>("--keys") { Description = "Distinct routing keys.", DefaultValueFactory = _ => 64 };
        var segments = new Option<int>("--segments") { Description = "Segments of the bench stream.", DefaultValueFactory = _ => 4 };
        var inflight = new Option<int>("--inflight") { Description = "Unacknowledged events per writer, at most.", DefaultValueFactory = _ => 4096 };
        var linger = new Option<double>("--linger-ms") { Description = "Writer linger in milliseconds.", DefaultValueFactory = _ => 1 };
        var rate = new Option<double?>("--rate")
        {
            Description = "Open loop: events per second across all writers, each sent when due and its latency measured from then (default: closed loop).",
        };
        var scaling = new Option<string?>("--scaling")
        {
            Description = "The stream's scaling policy: fixed:N (N segments), events:N or kbytes:N (target per segment per second, starting at --segments).",
        };
        var standalone = new Option<bool>("--standalone") { Description = "Start a standalone server in this process (fresh data directory, free ports)." };
        var dataDir = new Option<string?>("--data-dir") { Description = "With --standalone: the data directory (default: a temporary one, deleted after)." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON on stdout." };
        var catchUp = new Option<bool>("--catch-up") { Description = "After writing, read the stream from the start as fast as possible (with --standalone: once all of it is in Tier 2)." };
        var tier2 = new Option<string?>("--tier2") { Description = "With --standalone: Tier 2 (file://PATH or s3://BUCKET/PREFIX?endpoint=URL; default under the data directory)." };
        var groupReaders = new Option<int>("--group-readers")
        {
            Description = "After writing, read the (sealed) stream with N readers of one reader group, and with N whole-stream readers splitting the segments by hand, before and after.",
        };
        var export = new Option<bool>("--export")
        {
            Description = "After writing (and the catch-up read, if asked for), export the stream to an Arrow IPC file and then to a Parquet file (with --standalone: once all of it is in Tier 2).",
        };
        var function = new Option<bool>("--function") { Description = "After writing, handle the (sealed) stream with one function-host instance in this process (a handler that counts)." };
        var functionConcurrency = new Option<int>("--function-concurrency") { Description = "With --function: segments handled at once.", DefaultValueFactory = _ => 4 };
        var functionBatch = new Option<int>("--function-batch") { Description = "With --function: events per batch, at most.", DefaultValueFactory = _ => 256 };
        var transactionSize = new Option<int>("--transaction-size")
        {
            Description = "After writing, run --writers concurrent transactions of N events each for --duration seconds: events committed per second and commit latency.",
        };
        var command = new Command("bench", "Measure write throughput and ack latency percentiles.")
        {
            duration, warmup, size, writers, keys, segments, inflight, linger, rate, scaling, standalone, dataDir, json, catchUp, tier2,
            groupReaders, function, functionConcurrency, functionBatch, transactionSize, export,
        };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            BenchScaling? policy = null;
            if (parse.GetValue(scaling) is { } scalingText && (policy = BenchScaling.Parse(scalingText, out var scalingError)) is null)
            {
                throw new CliException(scalingError!);
            }

            var settings = new BenchSettings(
                TimeSpan.FromSeconds(parse.GetValue(warmup)),
                TimeSpan.FromSeconds(parse.GetValue(duration)), parse.GetValue(size), parse.GetValue(writers), parse.GetValue(keys),
                parse.GetValue(segments), parse.GetValue(inflight), TimeSpan.FromMilliseconds(parse.GetValue(linger)), parse.GetValue(rate), policy);
            if (settings.Duration <= TimeSpan.Zero || settings.Warmup < TimeSpan.Zero || settings.EventSize < 0 || settings.Writers < 1 || settings.Keys < 1 || settings.Segments < 1 || settings.Inflight < 1)
            {
                throw new CliException("--duration, --writers, --keys, --segments and --inflight must be positive, --size at least 0.");
            }

            if (settings.Rate is <= 0 or double.NaN or double.PositiveInfinity)
            {
                throw new CliException("--rate must be a positive number of events per second.");
            }

            var controller = parse.GetValue(CliSupport.Controller)!;
            StandaloneHost? server = null;
            string? tempDir = null;
            ILoggerFactory? loggerFactory = null;
            try
            {
                if (parse.GetValue(standalone))
                {
                    var dir = parse.GetValue(dataDir);
                    if (dir is null)
                    {
                        dir = tempDir = Path.Combine(Path.GetTempPath(), "streams-bench-" + Guid.NewGuid().ToString("N")[..8]);
                    }

                    var flags = new Dictionary<string, string?>
                    {
                        ["DataDirectory"] = dir,
                        ["Server:GrpcPort"] = FreePort(),
                        ["Server:DataPort"] = FreePort(),
                        ["Server:MetricsPort"] = FreePort(),
                        ["SegmentStore:Tier2"] = parse.GetValue(tier2),
                        // A catch-up read should find the data in Tier 2 soon after the writes stop.
                        ["SegmentStore:Tier2FlushAge"] = parse.GetValue(catchUp) || parse.GetValue(export) ? "00:00:01" : null,
                        // Stdout is the result (a table, or the --json document): the server's log goes to stderr,
                        // warnings and errors only.
                        ["Logging:Console:LogToStandardErrorThreshold"] = nameof(LogLevel.Trace),
                        ["Logging:LogLevel:Default"] = nameof(LogLevel.Warning),
                    };
                    var configuration = ServerConfiguration.Build(null, flags);
                    loggerFactory = ServerLogging.Create(configuration, LogLevel.Warning);
                    server = await StandaloneHost.StartAsync(configuration, loggerFactory, ct);
                    controller = server.Settings.GrpcUri;
                }

                var transport = parse.GetValue(CliSupport.Transport);
                await using var client = StreamsClient.Create(new StreamsClientOptions { ControllerUri = controller, Transport = transport });
                var bench = new WriteBench(client, settings);
                var asJson = parse.GetValue(json);
                Console.Error.WriteLine(settings.Rate is { } target
                    ? string.Create(CultureInfo.InvariantCulture, $"Open loop: {target:N0} events/s across {settings.Writers} writers, latency from each event's intended send time ({transport}).")
                    : string.Create(CultureInfo.InvariantCulture, $"Closed loop: {settings.Writers} writers, {settings.Inflight} events in flight each, latency from the write call ({transport})."));
                var (seconds, latency) = asJson || Console.IsOutputRedirected
                    ? await bench.RunAsync(PrintProgressLine, ct)
                    : await RunWithLiveTableAsync(bench, settings, ct);
                var result = Summarize(server is null ? controller : "standalone", transport.ToString(), settings, seconds, latency, bench);
                if (parse.GetValue(catchUp) && !bench.Interrupted && bench.Stream is { } written)
                {
                    result = result with { CatchUp = await CatchUpAsync(client, written, server, ct) };
                }

                if (parse.GetValue(export) && !bench.Interrupted && bench.Stream is { } exported)
                {
                    var settled = await SettleAsync(server, ct);
                    result = result with { Export = await ExportBench.RunAsync(client, "bench", exported, server?.Settings.MetricsPort, settled, ct) };
                }

                if ((parse.GetValue(groupReaders) > 0 || parse.GetValue(function)) && !bench.Interrupted && bench.Stream is { } read)
                {
                    await client.Streams.SealStreamAsync("bench", read, ct);
                    Func<string, Task<long?>>? recordWrites = server is null ? null : group => GroupRecordWritesAsync(server.Settings.MetricsPort, group);
                    if (parse.GetValue(groupReaders) is > 0 and var n)
                    {
                        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Reading {read} with {n} group readers and {n} whole-stream readers..."));
                        result = result with { GroupRead = await GroupReadBench.RunAsync(client, "bench", read, n, recordWrites, ct) };
                    }

                    if (parse.GetValue(function))
                    {
                        Console.Error.WriteLine($"Handling {read} with a function instance...");
                        result = result with
                        {
                            Function = await FunctionBench.RunAsync(controller, "bench", read, result.Events, parse.GetValue(functionConcurrency), parse.GetValue(functionBatch), recordWrites, ct),
                        };
                    }
                }

                if (parse.GetValue(transactionSize) is > 0 and var perTransaction && !bench.Interrupted)
                {
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Transactions of {perTransaction} events, {settings.Writers} at a time..."));
                    result = result with { Transactions = await TransactionBench.RunAsync(client, settings, perTransaction, ct) };
                }

                await bench.CleanUpAsync();

                if (asJson)
                {
                    Console.WriteLine(JsonSerializer.Serialize(result, BenchJsonContext.Default.BenchResult));
                }
                else
                {
                    PrintResult(result);
                }

                if (bench.Interrupted)
                {
                    Console.Error.WriteLine("Interrupted: the figures cover the time until then.");
                    return 130;
                }

                return result.Errors == 0 ? 0 : 1;
            }
            finally
            {
                if (server is not null)
                {
                    await server.DisposeAsync();
                }

                loggerFactory?.Dispose();
                if (tempDir is not null)
                {
                    Directory.Delete(tempDir, recursive: true);
                }
            }
        }));
        return command;
    }

    /// <summary>Reads the bench stream from the start as fast as possible; with an in-process server, first waits until it is all in Tier 2.</summary>
    private static async Task<CatchUpResult> CatchUpAsync(StreamsClient client, string stream, StandaloneHost? server, CancellationToken ct)
    {
        var settled = await SettleAsync(server, ct);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Reading {stream} from the start (settled for {settled:F1} s)..."));

        long events = 0, bytes = 0;
        var timer = Stopwatch.StartNew();
        await foreach (var e in client.CreateReader("bench", stream, Serializers.Bytes).ReadAllAsync(ct))
        {
            events++;
            bytes += e.Value.Length;
        }

        var seconds = timer.Elapsed.TotalSeconds;
        return new CatchUpResult(events, bytes, Math.Round(seconds, 2), Math.Round(events / seconds), Math.Round(bytes / seconds / 1e6, 2), Math.Round(settled, 1));
    }

    /// <summary>With an in-process server, waits until all of the stream is in Tier 2 and out of the cache; returns the seconds waited.</summary>
    private static async Task<double> SettleAsync(StandaloneHost? server, CancellationToken ct)
    {
        var settle = Stopwatch.StartNew();
        if (server is not null)
        {
            var deadline = DateTime.UtcNow.AddMinutes(5);
            while (server.UnflushedBytes > 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, ct);
            }

            await Task.Delay(TimeSpan.FromSeconds(2), ct); // a checkpoint and the log truncation that drops the frames from the cache
        }

        return settle.Elapsed.TotalSeconds;
    }

    private static async Task<(double, HistogramBase)> RunWithLiveTableAsync(WriteBench bench, BenchSettings settings, CancellationToken ct)
    {
        (double, HistogramBase) outcome = default;
        var table = new Table().AddColumns("elapsed", "events", "events/s", "MB/s", "p50 ms", "p99 ms", "segments");
        await AnsiConsole.Live(table).StartAsync(async live =>
        {
            outcome = await bench.RunAsync((elapsed, latency, liveSegments) =>
            {
                var events = latency.TotalCount;
                table.Rows.Clear();
                table.AddRow(
                    $"{elapsed:F0}/{settings.Duration.TotalSeconds:F0} s",
                    events.ToString("N0", CultureInfo.InvariantCulture),
                    (events / elapsed).ToString("N0", CultureInfo.InvariantCulture),
                    (events * (double)settings.EventSize / elapsed / 1e6).ToString("F1", CultureInfo.InvariantCulture),
                    LatencySummary.Milliseconds(latency, 50).ToString("F2", CultureInfo.InvariantCulture),
                    LatencySummary.Milliseconds(latency, 99).ToString("F2", CultureInfo.InvariantCulture),
                    liveSegments.ToString("N0", CultureInfo.InvariantCulture));
                live.Refresh();
            }, ct);
        });
        return outcome;
    }

    private static void PrintProgressLine(double elapsed, HistogramBase latency, int liveSegments) =>
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{elapsed,6:F1} s  {latency.TotalCount,12:N0} events  {latency.TotalCount / elapsed,10:N0} ev/s  p50 {LatencySummary.Milliseconds(latency, 50):F2} ms  p99 {LatencySummary.Milliseconds(latency, 99):F2} ms  {liveSegments:N0} segments"));

    private static BenchResult Summarize(string server, string transport, BenchSettings s, double seconds, HistogramBase latency, WriteBench bench)
    {
        var events = latency.TotalCount;
        var bytes = events * s.EventSize;
        var perSecond = seconds > 0 ? 1 / seconds : 0; // 0 s: interrupted during the warm-up
        return new BenchResult(s.OpenLoop ? "open-loop" : "closed-loop", server, transport, s.EventSize, s.Writers, s.Keys, s.InitialSegments, s.Inflight, s.Rate,
            Math.Round(seconds, 2), events, bytes, Math.Round(events * perSecond), Math.Round(bytes * perSecond / 1e6, 2),
            LatencySummary.From(latency), bench.Errors, bench.Interrupted, bench.OpenLoopOutcome())
        {
            Scaling = s.Scaling?.ToString() ?? string.Create(CultureInfo.InvariantCulture, $"fixed:{s.Segments}"),
            LiveSegments = bench.LiveSegments,
        };
    }

    private static void PrintResult(BenchResult r)
    {
        var mode = r.TargetRate is { } target ? string.Create(CultureInfo.InvariantCulture, $"open loop at {target:N0} events/s") : "closed loop";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{mode}, {r.Server} ({r.Transport}), {r.EventSize} B events, {r.Writers} writers, {r.Keys} keys, {r.Segments} segments ({r.Scaling}, {r.LiveSegments} at the end), {r.Inflight} in flight per writer"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {r.Events:N0} events in {r.Seconds:F1} s: {r.EventsPerSecond:N0} events/s, {r.MegabytesPerSecond:F1} MB/s, {r.Errors} errors"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  ack latency ms{(r.OpenLoop is null ? string.Empty : " (from intended send time)")}: {Percentiles(r.AckLatencyMs)}"));
        if (r.OpenLoop is { } o)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  sent {o.Sent:N0} events at {o.AchievedRate:N0} events/s ({o.AchievedRate / r.TargetRate!.Value * 100:F1}% of the target), {o.SentLate:N0} more than {o.LateThresholdMs:F0} ms late, {o.Unsent:N0} never sent"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  send lag ms: {Percentiles(o.SendLagMs)}"));
        }

        if (r.CatchUp is { } c)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  catch-up read from the start: {c.Events:N0} events, {c.Bytes / 1e6:F1} MB in {c.Seconds:F1} s: {c.EventsPerSecond:N0} events/s, {c.MegabytesPerSecond:F1} MB/s"));
        }

        if (r.GroupRead is { } g)
        {
            static string Run(ReadRun run) => string.Create(CultureInfo.InvariantCulture, $"{run.Events:N0} events in {run.Seconds:F2} s, {run.EventsPerSecond:N0} events/s, {run.MegabytesPerSecond:F1} MB/s");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {g.Readers} readers over {g.Segments} segments:"));
            Console.WriteLine($"    split by hand (before): {Run(g.HandSplitBefore)}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    reader group:           {Run(g.Group)} (first event to last; the first {g.GroupFirstEventSeconds:F2} s after the readers started, the group ended {g.GroupEndSeconds:F2} s after the last)"));
            Console.WriteLine($"    split by hand (after):  {Run(g.HandSplitAfter)}");
            if (g.GroupRecordWrites is { } w)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    group record writes: {w} ({g.GroupRecordWritesPerSecond:F2}/s: joins, assignments, completions, leaves and commits at most once a second)"));
            }
        }

        if (r.Transactions is { } t)
        {
            PrintTransactions(t);
        }

        if (r.Export is { } x)
        {
            static string Run(ExportRunResult run) => string.Create(CultureInfo.InvariantCulture,
                $"{run.Events:N0} events, {run.Bytes / 1e6:F1} MB in {run.Seconds:F2} s: {run.EventsPerSecond:N0} events/s, {run.MegabytesPerSecond:F1} MB/s; file {run.FileBytes / 1e6:F1} MB in {run.Batches} batches{(run.Tier2ReadBytes is { } t ? $"; {t / 1e6:F1} MB read from Tier 2" : string.Empty)}");
            Console.WriteLine($"  export to Arrow IPC: {Run(x.Arrow)}");
            Console.WriteLine($"  export to Parquet:   {Run(x.Parquet)}");
        }

        if (r.Function is { } f)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  function (concurrency {f.Concurrency}, batches of at most {f.BatchSize}): {f.Events:N0} events in {f.Seconds:F2} s, {f.EventsPerSecond:N0} events/s; {f.Batches:N0} batches committed, {f.BatchesPerSecond:N0}/s{(f.GroupRecordWrites is { } fw ? $"; {fw} group record writes" : string.Empty)}"));
        }
    }

    private static void PrintTransactions(TransactionBenchResult t)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  transactions of {t.EventsPerTransaction} events, {t.Concurrent} at a time: {t.Transactions:N0} committed in {t.Seconds:F2} s ({t.TransactionsPerSecond:N0}/s, {t.EventsPerSecond:N0} events/s){(t.Failed > 0 ? $", {t.Failed} failed" : string.Empty)}"));
        Console.WriteLine($"    commit (ms):      {Percentiles(t.CommitMs)}");
        Console.WriteLine($"    transaction (ms): {Percentiles(t.TransactionMs)}");
    }

    /// <summary>The in-process server's count of a reader group's record writes (null if it cannot be read).</summary>
    private static async Task<long?> GroupRecordWritesAsync(int metricsPort, string group)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("streams_readergroup_record_writes_total{", StringComparison.Ordinal) && l.Contains($"group=\"{group}\"", StringComparison.Ordinal));
            return line is null ? 0 : (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            return null;
        }
    }

    private static string Percentiles(LatencySummary l) => string.Create(CultureInfo.InvariantCulture,
        $"p50 {l.P50:F2}  p90 {l.P90:F2}  p95 {l.P95:F2}  p99 {l.P99:F2}  p99.9 {l.P999:F2}  max {l.Max:F2}  mean {l.Mean:F2}");

    private static string FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
    }
}
