using System.Diagnostics;
using Streams.Client.Batch;
using Streams.Client.Reading;
using Streams.Client.Serialization;

namespace Streams.Export.Internal;

/// <summary>
/// One export: reads the ranges in their order (several ahead, in parallel), gathers rows into batches bounded by
/// rows and bytes, and writes each batch as it fills. The file's format is fixed at the first batch, when the JSON
/// fields without a type get one. Nothing but the batch being filled and the reads ahead is held in memory.
/// </summary>
internal sealed class ExportRun
{
    /// <summary>How often progress is reported, at most.</summary>
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromMilliseconds(200);

    private readonly IReadOnlyList<SegmentRange> _ranges;
    private readonly Stream _output;
    private readonly ExportOptions _options;
    private readonly IReadOnlyDictionary<string, string> _metadata;
    private readonly RowBatch _rows;
    private readonly long _totalBytes;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private IBatchWriter? _writer;
    private JsonField[]? _typed;
    private long _written;
    private long _payloadBytes;
    private long _mismatches;
    private int _batches;
    private int _range;
    private long _bytesBeforeRange;
    private long _bytes;
    private TimeSpan _reportedAt;

    public ExportRun(IReadOnlyList<SegmentRange> ranges, Stream output, ExportOptions options, IReadOnlyDictionary<string, string> metadata)
    {
        _ranges = ranges;
        _output = output;
        _options = options;
        _metadata = metadata;
        _rows = new RowBatch(options.JsonFields);
        _totalBytes = ranges.Sum(r => r.Length);
    }

    public async Task<ExportResult> RunAsync(BatchClient batch, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var e in batch.ReadRangesAsync(_ranges, Serializers.Bytes, _options.Read, cancellationToken))
            {
                Track(e.Position);
                _rows.Add(e);
                if (_rows.Count >= _options.BatchRows || _rows.PayloadBytes >= _options.BatchBytes)
                {
                    await FlushAsync(cancellationToken);
                }

                if (_options.Progress is { } progress && (_rows.Count & 1023) == 0 && _clock.Elapsed - _reportedAt >= ProgressEvery)
                {
                    _reportedAt = _clock.Elapsed;
                    progress(new ExportProgress(_written + _rows.Count, _bytes, _range, _ranges.Count, _totalBytes));
                }
            }

            if (_rows.Count > 0 || _writer is null)
            {
                await FlushAsync(cancellationToken);
            }

            await _writer!.CompleteAsync(cancellationToken);
            _options.Progress?.Invoke(new ExportProgress(_written, _bytes, _ranges.Count, _ranges.Count, _totalBytes));
            return new ExportResult(_written, _bytes, _payloadBytes, _batches, _ranges.Count, _typed!, _mismatches);
        }
        finally
        {
            if (_writer is not null)
            {
                await _writer.DisposeAsync();
            }
        }
    }

    /// <summary>Moves on to the range an event belongs to (ranges come whole and in order), counting the bytes read.</summary>
    private void Track(EventPosition position)
    {
        while (_ranges[_range].Segment != position.Segment || position.Offset >= _ranges[_range].EndOffset)
        {
            _bytesBeforeRange += _ranges[_range].Length;
            _range++;
        }

        _bytes = _bytesBeforeRange + position.NextOffset - _ranges[_range].StartOffset;
    }

    /// <summary>Writes the rows gathered as one batch; the first (even an empty one at the end) fixes the file's schema.</summary>
    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        _typed ??= FieldColumns.Typed(_options.JsonFields, _rows);
        _writer ??= _options.Format switch
        {
            ExportFormat.Parquet => new ParquetBatchWriter(_output, _typed, _metadata),
            _ => new ArrowBatchWriter(_output, _typed, _metadata),
        };
        if (_rows.Count == 0)
        {
            return;
        }

        _mismatches += await _writer.WriteAsync(_rows, cancellationToken);
        _written += _rows.Count;
        _payloadBytes += _rows.PayloadBytes;
        _batches++;
        _rows.Clear();
    }
}
