using Parquet;
using Parquet.Schema;

namespace Streams.Export.Internal;

/// <summary>A Parquet file: one row group per export batch, Snappy-compressed, and the metadata that closes it.</summary>
internal sealed class ParquetBatchWriter : IBatchWriter
{
    /// <summary>
    /// Free buffers Parquet.Net's stream pool may keep between row groups. Unset, the pool keeps every buffer it ever
    /// made, so memory would follow the export's size rather than the batch size.
    /// </summary>
    private const int PoolFreeBytes = 64 * 1024 * 1024;

    private readonly Stream _output;
    private readonly JsonField[] _fields;
    private readonly IReadOnlyDictionary<string, string> _metadata;
    private readonly DataField<string> _segment = new("segment", nullable: false);
    private readonly DataField<long> _offset = new("offset");
    private readonly DataField<string> _key = new("routing_key", nullable: true);
    private readonly DataField<byte[]> _payload = new("payload", nullable: false);
    private readonly DataField[] _fieldColumns;
    private readonly ParquetSchema _schema;
    private ParquetWriter? _writer;

    public ParquetBatchWriter(Stream output, JsonField[] fields, IReadOnlyDictionary<string, string> metadata)
    {
        _output = output;
        _fields = fields;
        _metadata = metadata;
        _fieldColumns = [.. fields.Select(ColumnOf)];
        _schema = new ParquetSchema([_segment, _offset, _key, _payload, .. _fieldColumns]);
    }

    public async ValueTask<long> WriteAsync(RowBatch batch, CancellationToken cancellationToken)
    {
        var writer = await WriterAsync(cancellationToken);
        var mismatches = 0L;
        using var group = writer.CreateRowGroup();
        await group.WriteAsync(_segment, batch.Segments);
        await group.WriteAsync<long>(_offset, batch.Offsets.ToArray(), null, null, cancellationToken);
        await group.WriteAsync(_key, batch.Keys);
        await group.WriteAsync(_payload, batch.Payloads);
        for (var i = 0; i < _fields.Length; i++)
        {
            var values = batch.Fields[i];
            var column = _fieldColumns[i];
            switch (_fields[i].Type)
            {
                case JsonFieldType.Int64:
                    await group.WriteAsync<long>(column, FieldColumns.Int64s(values, ref mismatches), null, null, cancellationToken);
                    break;
                case JsonFieldType.Float64:
                    await group.WriteAsync<double>(column, FieldColumns.Float64s(values, ref mismatches), null, null, cancellationToken);
                    break;
                case JsonFieldType.Boolean:
                    await group.WriteAsync<bool>(column, FieldColumns.Booleans(values, ref mismatches), null, null, cancellationToken);
                    break;
                default:
                    await group.WriteAsync(column, FieldColumns.Strings(values));
                    break;
            }
        }

        return mismatches;
    }

    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        // A file without rows still has its schema.
        var writer = await WriterAsync(cancellationToken);
        await writer.DisposeAsync();
        _writer = null;
        await _output.FlushAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_writer is not null)
        {
            await _writer.DisposeAsync();
        }
    }

    private static DataField ColumnOf(JsonField field) => field.Type switch
    {
        JsonFieldType.Int64 => new DataField<long?>(field.Path),
        JsonFieldType.Float64 => new DataField<double?>(field.Path),
        JsonFieldType.Boolean => new DataField<bool?>(field.Path),
        _ => new DataField<string>(field.Path, nullable: true),
    };

    private async ValueTask<ParquetWriter> WriterAsync(CancellationToken cancellationToken)
    {
        if (_writer is null)
        {
            var options = new ParquetOptions
            {
                CompressionMethod = CompressionMethod.Snappy,
                MaximumSmallPoolFreeBytes = PoolFreeBytes,
                MaximumLargePoolFreeBytes = PoolFreeBytes,
            };
            _writer = await ParquetWriter.CreateAsync(_schema, _output, options, append: false, cancellationToken);
            _writer.CustomMetadata = _metadata;
        }

        return _writer;
    }
}
