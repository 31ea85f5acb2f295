namespace Streams.Export;

/// <summary>The file format of an export.</summary>
public enum ExportFormat
{
    /// <summary>An Apache Arrow IPC file (the "Feather v2" random-access format), one record batch per export batch.</summary>
    Arrow,

    /// <summary>A Parquet file, one row group per export batch, Snappy-compressed.</summary>
    Parquet,
}
