namespace Streams.Export;

/// <summary>How far an export is: rows and payload bytes written, ranges finished, and the bytes it covers in all.</summary>
/// <param name="Rows">Events read so far.</param>
/// <param name="Bytes">Segment bytes read so far (event frames included), out of <paramref name="TotalBytes"/>.</param>
/// <param name="RangesDone">Segment ranges read to their end.</param>
/// <param name="Ranges">Segment ranges the export covers.</param>
/// <param name="TotalBytes">Segment bytes the export covers.</param>
public readonly record struct ExportProgress(long Rows, long Bytes, int RangesDone, int Ranges, long TotalBytes);
