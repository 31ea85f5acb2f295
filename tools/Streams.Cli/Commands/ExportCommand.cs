using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Streams.Client;
using Streams.Client.Batch;
using Streams.Common.Configuration;
using Streams.Export;

namespace Streams.Cli.Commands;

/// <summary>
/// <c>streams export scope/stream --format arrow|parquet --out FILE</c>: the stream between two cuts as an Arrow IPC
/// or Parquet file (docs/export.md). The file is written beside its name and moved into place once complete, so a
/// failed export leaves no partial file. Stdout carries the summary; progress goes to stderr, only on a terminal or
/// with --progress.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var from = new Option<string?>("--from") { Description = "Start cut, as `stream cut` prints it (segment-id=offset,...; default: the stream's head)." };
        var to = new Option<string?>("--to") { Description = "End cut, exclusive (default: the stream's tail now)." };
        var format = new Option<string?>("--format") { Description = "arrow (Arrow IPC file) or parquet." };
        var output = new Option<string?>("--out") { Description = "The file to write (replaced if it exists)." };
        var jsonFields = new Option<string?>("--json-fields")
        {
            Description = "Columns taken from JSON payloads: comma-separated paths (a.b for nested), each optionally :string, :int64, :float64 or :bool (default: inferred from the first batch).",
        };
        var batchRows = new Option<int>("--batch-rows") { Description = "Rows per record batch or row group, at most.", DefaultValueFactory = _ => new ExportOptions().BatchRows };
        var batchBytes = new Option<string>("--batch-bytes") { Description = "Payload bytes per batch, at most (e.g. 64MiB).", DefaultValueFactory = _ => "64MiB" };
        var parallelism = new Option<int>("--parallelism") { Description = "Segment ranges read at once.", DefaultValueFactory = _ => new BatchReadOptions().Parallelism };
        var progress = new Option<bool>("--progress") { Description = "Show progress on stderr even when it is not a terminal." };
        var listRanges = new Option<bool>("--list-ranges") { Description = "Print the segment ranges between the cuts as JSON and export nothing (hand them to workers with --ranges)." };
        var ranges = new Option<string?>("--ranges") { Description = "Export only these ranges: a JSON file as --list-ranges prints (a worker's share), instead of --from/--to." };
        var command = new Command("export", "Export a stream between two cuts to an Arrow IPC or Parquet file.")
        {
            name, from, to, format, output, jsonFields, batchRows, batchBytes, parallelism, progress, listRanges, ranges,
        };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            var start = parse.GetValue(from) is { } fromText ? ParseCut(scope, stream, fromText, "--from") : null;
            var end = parse.GetValue(to) is { } toText ? ParseCut(scope, stream, toText, "--to") : null;
            await using var client = CliSupport.CreateClient(parse);
            if (parse.GetValue(listRanges))
            {
                var listed = await client.Batch.ListRangesAsync(scope, stream, start, end, ct);
                Console.WriteLine(JsonSerializer.Serialize(listed, ExportJsonContext.Default.IReadOnlyListSegmentRange));
                return 0;
            }

            var options = new ExportOptions
            {
                Format = parse.GetValue(format) switch
                {
                    "arrow" => ExportFormat.Arrow,
                    "parquet" => ExportFormat.Parquet,
                    null => throw new CliException("give --format arrow or --format parquet."),
                    var other => throw new CliException($"unknown --format '{other}': use arrow or parquet."),
                },
                BatchRows = parse.GetValue(batchRows),
                BatchBytes = ParseSize(parse.GetValue(batchBytes)!),
                JsonFields = parse.GetValue(jsonFields) is { } fields ? JsonField.ParseList(fields) : [],
                Read = new BatchReadOptions { Parallelism = parse.GetValue(parallelism) },
            };
            var path = parse.GetValue(output) ?? throw new CliException("give --out FILE.");
            IReadOnlyList<SegmentRange> share;
            if (parse.GetValue(ranges) is { } rangesFile)
            {
                if (start is not null || end is not null)
                {
                    throw new CliException("--ranges names what to export: leave out --from and --to.");
                }

                share = ReadRanges(rangesFile, scope, stream);
            }
            else
            {
                share = await client.Batch.ListRangesAsync(scope, stream, start, end, ct);
            }

            var display = parse.GetValue(progress) || !Console.IsErrorRedirected ? new ExportProgressDisplay(!Console.IsErrorRedirected) : null;
            options = options with { Progress = display is null ? null : display.Show };
            var timer = Stopwatch.StartNew();
            var result = await WriteAsync(path, file => StreamExporter.ExportRangesAsync(client.Batch, share, file, options, ct));
            display?.Finish();
            var seconds = timer.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Exported {result.Rows:N0} events ({result.Bytes / 1e6:F1} MB) from {result.Ranges} segment ranges to {path} ({parse.GetValue(format)}, {result.Batches} batches) in {seconds:F1} s: {result.Bytes / 1e6 / Math.Max(seconds, 1e-3):F1} MB/s"));
            if (result.Fields.Count > 0)
            {
                Console.WriteLine("JSON fields: " + string.Join(", ", result.Fields.Select(f => $"{f.Path}:{JsonField.NameOf(f.Type!.Value)}")));
            }

            if (result.Mismatches > 0)
            {
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"warning: {result.Mismatches:N0} JSON values did not fit their column's type and were written as nulls (give the type with name:type)."));
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Writes the export to a partial file beside <paramref name="path"/>, moved into place once complete.</summary>
    private static async Task<ExportResult> WriteAsync(string path, Func<Stream, Task<ExportResult>> export)
    {
        var partial = path + ".partial";
        FileStream file;
        try
        {
            file = new FileStream(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot write --out {path}: {e.Message}");
        }

        try
        {
            ExportResult result;
            await using (file)
            {
                result = await export(file);
            }

            File.Move(partial, path, overwrite: true);
            return result;
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
    }

    private static StreamCut ParseCut(string scope, string stream, string text, string option)
    {
        try
        {
            return CliSupport.ParseCut(scope, stream, text);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{option}: {e.Message}");
        }
    }

    private static long ParseSize(string text)
    {
        try
        {
            return ByteSize.Parse(text).Bytes;
        }
        catch (FormatException e)
        {
            throw new CliException($"--batch-bytes: {e.Message}");
        }
    }

    private static IReadOnlyList<SegmentRange> ReadRanges(string file, string scope, string stream)
    {
        IReadOnlyList<SegmentRange>? ranges;
        try
        {
            ranges = JsonSerializer.Deserialize(File.ReadAllText(file), ExportJsonContext.Default.IReadOnlyListSegmentRange);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new CliException($"--ranges {file}: {e.Message}");
        }

        if (ranges is null || ranges.Any(r => r is null || r.Scope != scope || r.Stream != stream || r.StartOffset < 0 || r.EndOffset < r.StartOffset))
        {
            throw new CliException($"--ranges {file} must hold ranges of {scope}/{stream} as `streams export --list-ranges` prints them.");
        }

        return ranges;
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<SegmentRange>))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class ExportJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
