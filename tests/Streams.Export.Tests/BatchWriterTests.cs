using System.Text;
using DuckDB.NET.Data;
using Streams.Client.Reading;
using Streams.Export.Internal;
using Streams.Testing;

namespace Streams.Export.Tests;

/// <summary>
/// Both writers, read back by readers nobody here wrote: DuckDB for Parquet, the JavaScript apache-arrow for Arrow
/// IPC. Values, nulls and types must survive; JSON fields get their inferred or given types.
/// </summary>
public sealed class BatchWriterTests : IDisposable
{
    private static readonly IReadOnlyList<JsonField> Fields = [new("id"), new("price"), new("ok"), new("customer.name"), new("count", JsonFieldType.Int64)];

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Two batches: the first decides the inferred types, the second holds a value that does not fit.</summary>
    private static List<List<EventRead<byte[]>>> Batches() =>
    [
        [
            Event("s/t/0.#epoch.0", 0, "k1", """{"id": 1, "price": 2.5, "ok": true, "customer": {"name": "ann"}, "count": 7}"""),
            Event("s/t/0.#epoch.0", 90, null, "not json"),
            Event("s/t/1.#epoch.0", 0, "k2", """{"id": 3, "price": 4, "ok": false, "customer": {"name": 5}}"""),
        ],
        [
            Event("s/t/2.#epoch.1", 10, "k3", """{"id": "four", "price": 1e3, "ok": null, "count": 1.5}"""),
        ],
    ];

    /// <summary>Each row as segment|offset|key|payload|id|price|ok|customer.name|count.</summary>
    private static List<string> Expected()
    {
        string[] fields = ["1|2.5|True|ann|7", "null|null|null|null|null", "3|4|False|5|null", "null|1000|null|null|null"];
        return [.. Batches().SelectMany(b => b).Select((e, i) => $"{e.Position.Segment}|{e.Position.Offset}|{e.RoutingKey ?? "null"}|{Encoding.UTF8.GetString(e.Value)}|{fields[i]}")];
    }

    private static EventRead<byte[]> Event(string segment, long offset, string? key, string payload) =>
        new(Encoding.UTF8.GetBytes(payload), new EventPosition(segment, offset, offset + payload.Length + 8), key);

    private async Task<(string Path, long Mismatches)> WriteAsync(ExportFormat format)
    {
        var path = Path.Combine(_dir.Path, format == ExportFormat.Arrow ? "out.arrow" : "out.parquet");
        await using var file = File.Create(path);
        var rows = new RowBatch(Fields);
        IBatchWriter? writer = null;
        var mismatches = 0L;
        foreach (var batch in Batches())
        {
            batch.ForEach(e => rows.Add(e));
            var typed = FieldColumns.Typed(Fields, rows);
            writer ??= format == ExportFormat.Arrow
                ? new ArrowBatchWriter(file, typed, new Dictionary<string, string> { ["streams.order"] = "test" })
                : new ParquetBatchWriter(file, typed, new Dictionary<string, string> { ["streams.order"] = "test" });
            mismatches += await writer.WriteAsync(rows, default);
            rows.Clear();
        }

        await writer!.CompleteAsync(default);
        await writer.DisposeAsync();
        return (path, mismatches);
    }

    [Fact]
    public void Types_are_inferred_from_the_values_of_the_first_batch()
    {
        var rows = new RowBatch(Fields);
        Batches()[0].ForEach(e => rows.Add(e));

        var typed = FieldColumns.Typed(Fields, rows);

        // id: integers; price: 2.5 and 4; ok: booleans; customer.name: "ann" and 5; count: given.
        Assert.Equal([JsonFieldType.Int64, JsonFieldType.Float64, JsonFieldType.Boolean, JsonFieldType.String, JsonFieldType.Int64], typed.Select(f => f.Type!.Value));
    }

    [Fact]
    public async Task DuckDB_reads_the_Parquet_file_with_its_values_and_types()
    {
        var (path, mismatches) = await WriteAsync(ExportFormat.Parquet);

        using var db = new DuckDBConnection("DataSource=:memory:");
        db.Open();
        using var describe = db.CreateCommand();
        describe.CommandText = $"DESCRIBE SELECT * FROM read_parquet('{path}')";
        var types = new List<string>();
        using (var reader = describe.ExecuteReader())
        {
            while (reader.Read())
            {
                types.Add($"{reader.GetString(0)}:{reader.GetString(1)}");
            }
        }

        Assert.Equal(["segment:VARCHAR", "offset:BIGINT", "routing_key:VARCHAR", "payload:BLOB", "id:BIGINT", "price:DOUBLE", "ok:BOOLEAN", "customer.name:VARCHAR", "count:BIGINT"], types);

        using var select = db.CreateCommand();
        select.CommandText = $"SELECT segment, \"offset\", routing_key, payload, id, price, ok, \"customer.name\", \"count\" FROM read_parquet('{path}')";
        var rows = new List<string>();
        using (var reader = select.ExecuteReader())
        {
            while (reader.Read())
            {
                using var blob = reader.GetStream(3);
                using var copy = new MemoryStream();
                blob.CopyTo(copy);
                rows.Add(string.Join('|', reader.GetString(0), reader.GetInt64(1), Cell(reader, 2), Encoding.UTF8.GetString(copy.ToArray()), Cell(reader, 4), Cell(reader, 5), Cell(reader, 6), Cell(reader, 7), Cell(reader, 8)));
            }
        }

        Assert.Equal(Expected(), rows);
        // "four" is no int64 and 1.5 no int64: two values written as nulls. (A JSON null is no value.)
        Assert.Equal(2, mismatches);
    }

    [Fact]
    public async Task The_JavaScript_arrow_reader_reads_the_Arrow_file_with_its_values_and_types()
    {
        var (path, mismatches) = await WriteAsync(ExportFormat.Arrow);

        var file = await Node.RunJsonAsync("read-arrow.mjs", path);

        Assert.Equal(
            ["segment:Utf8:False", "offset:Int64:False", "routing_key:Utf8:True", "payload:Binary:False", "id:Int64:True", "price:Float64:True", "ok:Bool:True", "customer.name:Utf8:True", "count:Int64:True"],
            file.GetProperty("fields").EnumerateArray().Select(f => $"{f.GetProperty("name").GetString()}:{f.GetProperty("type").GetString()}:{f.GetProperty("nullable").GetBoolean()}"));
        Assert.Equal("test", file.GetProperty("metadata").GetProperty("streams.order").GetString());
        Assert.Equal(2, file.GetProperty("batches").GetInt32());
        var rows = file.GetProperty("rows").EnumerateArray().Select(r => string.Join('|', r.EnumerateArray().Select((c, i) => i == 3 ? Encoding.UTF8.GetString(Convert.FromBase64String(c.GetString()!)) : c.ToString() is "" ? "null" : c.ToString()))).ToList();
        Assert.Equal(Expected(), rows);
        Assert.Equal(2, mismatches);
    }

    private static string Cell(System.Data.Common.DbDataReader reader, int column) => reader.IsDBNull(column) ? "null" : Convert.ToString(reader.GetValue(column), System.Globalization.CultureInfo.InvariantCulture)!;
}
