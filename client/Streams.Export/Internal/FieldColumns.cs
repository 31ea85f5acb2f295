using System.Text.Json;

namespace Streams.Export.Internal;

/// <summary>
/// The typing of JSON fields, shared by both formats: what type a column without one gets from the values of the
/// first batch, and each batch's values as typed column values (nulls where a value is missing or of another type).
/// </summary>
internal static class FieldColumns
{
    /// <summary>
    /// The narrowest type every present value fits: bool if all are booleans, int64 if all are integers that fit,
    /// float64 if all are numbers, otherwise string (also when none is present: string takes any value later on).
    /// </summary>
    public static JsonFieldType Infer(List<JsonValue> values)
    {
        bool any = false, booleans = true, integers = true, numbers = true;
        foreach (var value in values)
        {
            if (!value.IsPresent)
            {
                continue;
            }

            any = true;
            booleans &= value.Kind is JsonValueKind.True or JsonValueKind.False;
            numbers &= value.Kind == JsonValueKind.Number;
            integers &= value.Integer is not null;
        }

        return !any ? JsonFieldType.String
            : booleans ? JsonFieldType.Boolean
            : numbers && integers ? JsonFieldType.Int64
            : numbers ? JsonFieldType.Float64
            : JsonFieldType.String;
    }

    /// <summary>The fields with their types: as given, or inferred from <paramref name="batch"/>'s values.</summary>
    public static JsonField[] Typed(IReadOnlyList<JsonField> fields, RowBatch batch) =>
        [.. fields.Select((f, i) => f.Type is null ? f with { Type = Infer(batch.Fields[i]) } : f)];

    public static long?[] Int64s(List<JsonValue> values, ref long mismatches)
    {
        var column = new long?[values.Count];
        for (var i = 0; i < column.Length; i++)
        {
            column[i] = values[i].Integer;
            mismatches += values[i].IsPresent && column[i] is null ? 1 : 0;
        }

        return column;
    }

    public static double?[] Float64s(List<JsonValue> values, ref long mismatches)
    {
        var column = new double?[values.Count];
        for (var i = 0; i < column.Length; i++)
        {
            column[i] = values[i].Kind == JsonValueKind.Number ? values[i].Number : null;
            mismatches += values[i].IsPresent && column[i] is null ? 1 : 0;
        }

        return column;
    }

    public static bool?[] Booleans(List<JsonValue> values, ref long mismatches)
    {
        var column = new bool?[values.Count];
        for (var i = 0; i < column.Length; i++)
        {
            column[i] = values[i].Kind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => null,
            };
            mismatches += values[i].IsPresent && column[i] is null ? 1 : 0;
        }

        return column;
    }

    /// <summary>Strings as they are; numbers, booleans, objects and arrays as their JSON text. Never a mismatch.</summary>
    public static string?[] Strings(List<JsonValue> values)
    {
        var column = new string?[values.Count];
        for (var i = 0; i < column.Length; i++)
        {
            column[i] = values[i].Kind switch
            {
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                JsonValueKind.Undefined or JsonValueKind.Null => null,
                _ => values[i].Text,
            };
        }

        return column;
    }
}
