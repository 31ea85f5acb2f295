namespace Streams.Export;

/// <summary>What an export wrote.</summary>
/// <param name="Rows">Rows (events) written.</param>
/// <param name="Bytes">Segment bytes read (event frames included).</param>
/// <param name="PayloadBytes">Payload bytes written.</param>
/// <param name="Batches">Record batches (Arrow) or row groups (Parquet) written.</param>
/// <param name="Ranges">Segment ranges read.</param>
/// <param name="Fields">The JSON fields with the types their columns got.</param>
/// <param name="Mismatches">JSON values present but not of their column's type, written as nulls.</param>
public sealed record ExportResult(long Rows, long Bytes, long PayloadBytes, int Batches, int Ranges, IReadOnlyList<JsonField> Fields, long Mismatches);
