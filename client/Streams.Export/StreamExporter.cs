using System.Text.Json;
using Streams.Client;
using Streams.Client.Batch;
using Streams.Export.Internal;

namespace Streams.Export;

/// <summary>
/// Exports a stream between two cuts to a file that analytics tools read: Apache Arrow IPC or Parquet, with the
/// columns segment (string), offset (int64), routing_key (string, null where the writer did not store keys), payload
/// (binary), then the <see cref="ExportOptions.JsonFields"/> taken from JSON payloads.
/// <para>
/// Rows come in a fixed order: by segment id (creation epoch, then segment number), then by offset. Events of one
/// routing key therefore keep the order they were written in, across scales too (a segment's predecessors have lower
/// ids). The ranges are read in parallel (<see cref="BatchReadOptions.Parallelism"/>), the order is not affected.
/// </para>
/// <para>
/// A JSON field without a type gets the narrowest of bool, int64, float64 and string that fits every value of the
/// first batch (string if none has one); later values of another type become nulls, counted in
/// <see cref="ExportResult.Mismatches"/>. The file's metadata holds "streams.stream", "streams.order" and
/// "streams.ranges" (the ranges exported, as JSON).
/// </para>
/// </summary>
public static class StreamExporter
{
    /// <summary>The order of rows, as the file's metadata states it.</summary>
    public const string RowOrder = "segment id (epoch, then number), then offset";

    /// <summary>The ranges in the file's metadata as the CLI prints them (camelCase).</summary>
    private static readonly JsonSerializerOptions RangesJson = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Exports <paramref name="scope"/>/<paramref name="stream"/> from <paramref name="from"/> (null: its head) to
    /// <paramref name="to"/> (null: its tail now) into <paramref name="output"/> (writable and seekable for Parquet),
    /// which it leaves open. Throws <see cref="ArgumentException"/> for bad options or cuts (as
    /// <see cref="BatchClient.ListRangesAsync"/>), and <see cref="StreamsException"/> if the stream cannot be read.
    /// </summary>
    public static async Task<ExportResult> ExportAsync(StreamsClient client, string scope, string stream, StreamCut? from, StreamCut? to, Stream output, ExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var settings = options ?? new ExportOptions();
        settings.Validate();
        var ranges = await client.Batch.ListRangesAsync(scope, stream, from, to, cancellationToken);
        return await ExportRangesAsync(client.Batch, ranges, output, settings, cancellationToken);
    }

    /// <summary>
    /// Exports <paramref name="ranges"/> (e.g. a worker's share of <see cref="BatchClient.ListRangesAsync"/>, in the
    /// listed order) into <paramref name="output"/>, which it leaves open. Throws as <see cref="ExportAsync"/>.
    /// </summary>
    public static Task<ExportResult> ExportRangesAsync(BatchClient batch, IReadOnlyList<SegmentRange> ranges, Stream output, ExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(output);
        var settings = options ?? new ExportOptions();
        settings.Validate();
        var metadata = new Dictionary<string, string>
        {
            ["streams.stream"] = string.Join(",", ranges.Select(r => $"{r.Scope}/{r.Stream}").Distinct()),
            ["streams.order"] = RowOrder,
            ["streams.ranges"] = JsonSerializer.Serialize(ranges, RangesJson),
        };
        return new ExportRun(ranges, output, settings, metadata).RunAsync(batch, cancellationToken);
    }
}
