using Streams.Client.Batch;

namespace Streams.Export;

/// <summary>Settings of an export (<see cref="StreamExporter"/>).</summary>
public sealed record ExportOptions
{
    /// <summary>The file format; default Arrow.</summary>
    public ExportFormat Format { get; init; } = ExportFormat.Arrow;

    /// <summary>
    /// Rows per record batch (Arrow) or row group (Parquet), at most; default 65,536. With <see cref="BatchBytes"/>
    /// it bounds the memory an export holds, whatever the stream's size.
    /// </summary>
    public int BatchRows { get; init; } = 65_536;

    /// <summary>
    /// Payload bytes per batch, at most (a batch closes once it holds this much); default 64 MiB. A single larger
    /// event still makes a batch of its own.
    /// </summary>
    public long BatchBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Columns taken from JSON payloads, after the fixed ones; none by default.</summary>
    public IReadOnlyList<JsonField> JsonFields { get; init; } = [];

    /// <summary>How the segment ranges are read (parallelism, read size).</summary>
    public BatchReadOptions Read { get; init; } = new();

    /// <summary>Called with the export's progress at most every 200 ms and once at the end, on the export's own flow; null: none.</summary>
    public Action<ExportProgress>? Progress { get; init; }

    internal void Validate()
    {
        if (BatchRows is < 1 or > 16 * 1024 * 1024)
        {
            throw new ArgumentException($"BatchRows must be between 1 and 16,777,216 (is {BatchRows}).");
        }

        if (BatchBytes is < 1024 or > 1024L * 1024 * 1024)
        {
            throw new ArgumentException($"BatchBytes must be between 1 KiB and 1 GiB (is {BatchBytes}).");
        }

        if (!Enum.IsDefined(Format))
        {
            throw new ArgumentException($"Format {Format} is not one of {string.Join(", ", Enum.GetNames<ExportFormat>())}.");
        }

        JsonField.Validate(JsonFields);
    }
}
