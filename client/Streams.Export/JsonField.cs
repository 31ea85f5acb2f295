using System.Globalization;

namespace Streams.Export;

/// <summary>
/// A column taken from JSON payloads: the value at <see cref="Path"/> (property names separated by dots, from the
/// payload's top-level object), typed as <see cref="Type"/>, or, when that is null, as the export's first batch
/// suggests (<see cref="StreamExporter"/>). A payload that is not JSON, lacks the path or holds a value of another
/// type gives a null.
/// </summary>
/// <param name="Path">Where the value is, e.g. "price" or "customer.id"; also the column's name.</param>
/// <param name="Type">The column's type, or null to infer it.</param>
public sealed record JsonField(string Path, JsonFieldType? Type = null)
{
    /// <summary>The column names the export always writes, which a field cannot take.</summary>
    public static IReadOnlyList<string> FixedColumns { get; } = ["segment", "offset", "routing_key", "payload"];

    /// <summary>The path's property names.</summary>
    internal string[] Steps => Path.Split('.');

    /// <summary>
    /// Fields as written on a command line: comma-separated paths, each optionally with ":type" (string, int64,
    /// float64, bool), e.g. "customer.id:int64,price,note:string". Throws <see cref="ArgumentException"/> saying what
    /// is wrong: an empty path, an unknown type, a repeated field or one named as a fixed column.
    /// </summary>
    public static IReadOnlyList<JsonField> ParseList(string text)
    {
        var fields = new List<JsonField>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var colon = part.LastIndexOf(':');
            var path = colon < 0 ? part : part[..colon].Trim();
            JsonFieldType? type = colon < 0 ? null : ParseType(part[(colon + 1)..].Trim(), part);
            fields.Add(new JsonField(path, type));
        }

        Validate(fields);
        return fields;
    }

    /// <summary>Checks a list of fields; throws <see cref="ArgumentException"/> as <see cref="ParseList"/>.</summary>
    public static void Validate(IReadOnlyList<JsonField> fields)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in fields)
        {
            if (field.Path.Length == 0 || field.Steps.Any(s => s.Length == 0))
            {
                throw new ArgumentException($"JSON field '{field.Path}' has an empty name: give property names separated by dots, e.g. customer.id.");
            }

            if (FixedColumns.Contains(field.Path))
            {
                throw new ArgumentException($"JSON field '{field.Path}' would take the name of a column every export has ({string.Join(", ", FixedColumns)}).");
            }

            if (!seen.Add(field.Path))
            {
                throw new ArgumentException($"JSON field '{field.Path}' is given twice.");
            }
        }
    }

    /// <summary>The type's name as <see cref="ParseList"/> takes it.</summary>
    public static string NameOf(JsonFieldType type) => type switch
    {
        JsonFieldType.Int64 => "int64",
        JsonFieldType.Float64 => "float64",
        JsonFieldType.Boolean => "bool",
        _ => "string",
    };

    private static JsonFieldType ParseType(string name, string part) => name.ToLower(CultureInfo.InvariantCulture) switch
    {
        "string" => JsonFieldType.String,
        "int64" or "long" => JsonFieldType.Int64,
        "float64" or "double" => JsonFieldType.Float64,
        "bool" or "boolean" => JsonFieldType.Boolean,
        _ => throw new ArgumentException($"JSON field '{part}' has an unknown type '{name}': use string, int64, float64 or bool."),
    };
}
