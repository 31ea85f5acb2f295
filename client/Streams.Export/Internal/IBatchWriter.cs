namespace Streams.Export.Internal;

/// <summary>Writes an export's batches to its file, in order: one record batch or row group per call.</summary>
internal interface IBatchWriter : IAsyncDisposable
{
    /// <summary>Writes the batch's rows; returns how many JSON values did not fit their column's type (written as nulls).</summary>
    ValueTask<long> WriteAsync(RowBatch batch, CancellationToken cancellationToken);

    /// <summary>Writes what closes the file (Arrow's footer, Parquet's metadata) and flushes it.</summary>
    ValueTask CompleteAsync(CancellationToken cancellationToken);
}
