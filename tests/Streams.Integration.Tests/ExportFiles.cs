using System.Globalization;
using System.Text;
using System.Text.Json;
using DuckDB.NET.Data;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>One row of an exported file, or one event of a plain read: where it is, its key and payload, and its JSON id.</summary>
internal sealed record ExportedRow(string Segment, long Offset, string? Key, string Payload, long? Id);

/// <summary>
/// Reads the files `streams export` writes with readers nobody here wrote: DuckDB (Parquet) and the JavaScript
/// apache-arrow (Arrow IPC), and the events of `streams read --format json` in the export's order.
/// </summary>
internal static class ExportFiles
{
    /// <summary>The Parquet file's rows in file order, its column types and its row-group count, as DuckDB sees them.</summary>
    public static (List<ExportedRow> Rows, List<string> Types, long RowGroups) ReadParquet(string path)
    {
        using var db = new DuckDBConnection("DataSource=:memory:");
        db.Open();
        var types = Query(db, $"DESCRIBE SELECT * FROM read_parquet('{path}')", r => $"{r.GetString(0)}:{r.GetString(1)}");
        var rowGroups = Query(db, $"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{path}')", r => r.GetInt64(0)).Single();
        var rows = Query(db, $"SELECT segment, \"offset\", routing_key, payload, id FROM read_parquet('{path}')", r =>
        {
            using var blob = r.GetStream(3);
            using var copy = new MemoryStream();
            blob.CopyTo(copy);
            return new ExportedRow(r.GetString(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetString(2), Encoding.UTF8.GetString(copy.ToArray()), r.IsDBNull(4) ? null : r.GetInt64(4));
        });
        return (rows, types, rowGroups);
    }

    /// <summary>The Arrow file's rows, column types (name:type) and record-batch count, as apache-arrow (Node.js) reads them.</summary>
    public static async Task<(List<ExportedRow> Rows, List<string> Types, int Batches)> ReadArrowAsync(string path)
    {
        var file = await Node.RunJsonAsync("read-arrow.mjs", path);
        var names = file.GetProperty("fields").EnumerateArray().Select(f => f.GetProperty("name").GetString()!).ToList();
        var types = file.GetProperty("fields").EnumerateArray().Select(f => $"{f.GetProperty("name").GetString()}:{f.GetProperty("type").GetString()}").ToList();
        var id = names.IndexOf("id");
        var rows = file.GetProperty("rows").EnumerateArray().Select(r =>
        {
            var cells = r.EnumerateArray().ToList();
            return new ExportedRow(
                cells[0].GetString()!,
                long.Parse(cells[1].GetString()!, CultureInfo.InvariantCulture),
                cells[2].ValueKind == JsonValueKind.Null ? null : cells[2].GetString(),
                Encoding.UTF8.GetString(Convert.FromBase64String(cells[3].GetString()!)),
                id < 0 || cells[id].ValueKind == JsonValueKind.Null ? null : long.Parse(cells[id].GetString()!, CultureInfo.InvariantCulture));
        }).ToList();
        return (rows, types, file.GetProperty("batches").GetInt32());
    }

    /// <summary>The events of `streams read --format json` output, in the export's order: by segment id, then offset.</summary>
    public static List<ExportedRow> InExportOrder(string readJson, Func<string, long?> id) =>
        [.. readJson.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .Select(e => new ExportedRow(e.GetProperty("segment").GetString()!, e.GetProperty("offset").GetInt64(), e.GetProperty("key").GetString(), e.GetProperty("value").GetString()!, id(e.GetProperty("value").GetString()!)))
            .OrderBy(r => SegmentId(r.Segment)).ThenBy(r => r.Offset)];

    /// <summary>A segment's id from its name "scope/stream/number.#epoch.E": (E &lt;&lt; 32) | number.</summary>
    public static long SegmentId(string segment)
    {
        var last = segment[(segment.LastIndexOf('/') + 1)..];
        var number = long.Parse(last[..last.IndexOf('.')], CultureInfo.InvariantCulture);
        var epoch = long.Parse(last[(last.LastIndexOf('.') + 1)..], CultureInfo.InvariantCulture);
        return (epoch << 32) | number;
    }

    private static List<T> Query<T>(DuckDBConnection db, string sql, Func<System.Data.Common.DbDataReader, T> row)
    {
        using var command = db.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(row(reader));
        }

        return rows;
    }
}
