using System.Runtime.InteropServices;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;

namespace Streams.Export.Internal;

/// <summary>An Arrow IPC file: the schema, one record batch per export batch, and the footer that indexes them.</summary>
internal sealed class ArrowBatchWriter : IBatchWriter
{
    private readonly Schema _schema;
    private readonly JsonField[] _fields;
    private readonly ArrowFileWriter _writer;

    public ArrowBatchWriter(Stream output, JsonField[] fields, IReadOnlyDictionary<string, string> metadata)
    {
        _fields = fields;
        var schema = new Schema.Builder()
            .Field(f => f.Name("segment").DataType(StringType.Default).Nullable(false))
            .Field(f => f.Name("offset").DataType(Int64Type.Default).Nullable(false))
            .Field(f => f.Name("routing_key").DataType(StringType.Default).Nullable(true))
            .Field(f => f.Name("payload").DataType(BinaryType.Default).Nullable(false));
        foreach (var field in fields)
        {
            schema.Field(f => f.Name(field.Path).DataType(TypeOf(field.Type!.Value)).Nullable(true));
        }

        foreach (var (key, value) in metadata)
        {
            schema.Metadata(key, value);
        }

        _schema = schema.Build();
        _writer = new ArrowFileWriter(output, _schema, leaveOpen: true);
    }

    public async ValueTask<long> WriteAsync(RowBatch batch, CancellationToken cancellationToken)
    {
        var mismatches = 0L;
        var columns = new List<IArrowArray>(4 + _fields.Length)
        {
            new StringArray.Builder().Reserve(batch.Count).AppendRange(batch.Segments).Build(),
            new Int64Array.Builder().Reserve(batch.Count).AppendRange(batch.Offsets).Build(),
            Strings(batch.Keys),
            Payloads(batch.Payloads),
        };
        for (var i = 0; i < _fields.Length; i++)
        {
            var values = batch.Fields[i];
            columns.Add(_fields[i].Type switch
            {
                JsonFieldType.Int64 => Nullable<long, Int64Array, Int64Array.Builder>(new Int64Array.Builder(), FieldColumns.Int64s(values, ref mismatches)),
                JsonFieldType.Float64 => Nullable<double, DoubleArray, DoubleArray.Builder>(new DoubleArray.Builder(), FieldColumns.Float64s(values, ref mismatches)),
                JsonFieldType.Boolean => Nullable<bool, BooleanArray, BooleanArray.Builder>(new BooleanArray.Builder(), FieldColumns.Booleans(values, ref mismatches)),
                _ => Strings(FieldColumns.Strings(values)),
            });
        }

        using var record = new RecordBatch(_schema, columns, batch.Count);
        await _writer.WriteRecordBatchAsync(record, cancellationToken);
        return mismatches;
    }

    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        await _writer.WriteEndAsync(cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        _writer.Dispose();
        return ValueTask.CompletedTask;
    }

    private static IArrowType TypeOf(JsonFieldType type) => type switch
    {
        JsonFieldType.Int64 => Int64Type.Default,
        JsonFieldType.Float64 => DoubleType.Default,
        JsonFieldType.Boolean => BooleanType.Default,
        _ => StringType.Default,
    };

    private static TArray Nullable<T, TArray, TBuilder>(TBuilder builder, T?[] values)
        where T : struct
        where TArray : IArrowArray
        where TBuilder : IArrowArrayBuilder<T, TArray, TBuilder>
    {
        builder.Reserve(values.Length);
        foreach (var value in values)
        {
            if (value is { } present)
            {
                builder.Append(present);
            }
            else
            {
                builder.AppendNull();
            }
        }

        return builder.Build(default);
    }

    private static StringArray Strings(IReadOnlyList<string?> values)
    {
        var builder = new StringArray.Builder().Reserve(values.Count);
        foreach (var value in values)
        {
            if (value is null)
            {
                builder.AppendNull();
            }
            else
            {
                builder.Append(value);
            }
        }

        return builder.Build();
    }

    /// <summary>
    /// The payloads as one offsets buffer and one data buffer, copied once: the builder's append per value cost more
    /// than half of an export's time.
    /// </summary>
    private static BinaryArray Payloads(List<byte[]> payloads)
    {
        var total = 0L;
        foreach (var payload in payloads)
        {
            total += payload.Length;
        }

        var offsets = new int[payloads.Count + 1];
        var data = new byte[checked((int)total)];
        var at = 0;
        for (var i = 0; i < payloads.Count; i++)
        {
            offsets[i] = at;
            payloads[i].CopyTo(data, at);
            at += payloads[i].Length;
        }

        offsets[^1] = at;
        return new BinaryArray(BinaryType.Default, payloads.Count, new ArrowBuffer(MemoryMarshal.AsBytes(offsets.AsSpan()).ToArray()), new ArrowBuffer(data), ArrowBuffer.Empty);
    }
}
