using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Export;

namespace Streams.Cli.Bench;

/// <summary>
/// Exports the bench stream (<c>bench --export</c>), once all of it is in Tier 2, to an Arrow IPC file and then to a
/// Parquet file in a temporary directory, and measures each: segment bytes read per second, the file's size, and,
/// with an in-process server, the bytes read from Tier 2 meanwhile (what shows the export did not come from a cache).
/// </summary>
internal static class ExportBench
{
    public static async Task<ExportBenchResult> RunAsync(StreamsClient client, string scope, string stream, int? metricsPort, double settleSeconds, CancellationToken ct)
    {
        var dir = Path.Combine(Path.GetTempPath(), "streams-bench-export-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var arrow = await RunOnceAsync(client, scope, stream, ExportFormat.Arrow, Path.Combine(dir, "bench.arrow"), metricsPort, ct);
            var parquet = await RunOnceAsync(client, scope, stream, ExportFormat.Parquet, Path.Combine(dir, "bench.parquet"), metricsPort, ct);
            return new ExportBenchResult(arrow, parquet, Math.Round(settleSeconds, 1));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<ExportRunResult> RunOnceAsync(StreamsClient client, string scope, string stream, ExportFormat format, string path, int? metricsPort, CancellationToken ct)
    {
        Console.Error.WriteLine($"Exporting {scope}/{stream} to {format}...");
        var tier2Before = metricsPort is { } port ? await Tier2ReadBytesAsync(port) : null;
        var timer = Stopwatch.StartNew();
        ExportResult result;
        await using (var file = File.Create(path))
        {
            result = await StreamExporter.ExportAsync(client, scope, stream, null, null, file, new ExportOptions { Format = format }, ct);
        }

        var seconds = timer.Elapsed.TotalSeconds;
        var tier2After = metricsPort is { } again ? await Tier2ReadBytesAsync(again) : null;
        return new ExportRunResult(format.ToString().ToLowerInvariant(), result.Rows, result.Bytes, Math.Round(seconds, 2), Math.Round(result.Rows / seconds), Math.Round(result.Bytes / seconds / 1e6, 2),
            new FileInfo(path).Length, result.Batches, tier2After - tier2Before);
    }

    /// <summary>The in-process server's count of chunk bytes read from Tier 2 (null if it cannot be read).</summary>
    private static async Task<long?> Tier2ReadBytesAsync(int metricsPort)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("streams_segmentstore_tier2_read_bytes_total", StringComparison.Ordinal));
            return line is null ? 0 : (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            return null;
        }
    }
}
