using System.Text.Json;

namespace Streams.Export.Internal;

/// <summary>
/// One value taken from a JSON payload, kept until its column's type is known: its kind, and its number or text.
/// Missing values (no such path, or a payload that is not JSON) are <see cref="JsonValueKind.Undefined"/>.
/// </summary>
internal readonly record struct JsonValue(JsonValueKind Kind, string? Text, double Number, long? Integer)
{
    public static JsonValue Missing => default;

    public static JsonValue From(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => new(JsonValueKind.String, element.GetString(), 0, null),
        JsonValueKind.Number => new(JsonValueKind.Number, element.GetRawText(), element.GetDouble(), element.TryGetInt64(out var integer) ? integer : null),
        JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null => new(element.ValueKind, null, 0, null),
        _ => new(element.ValueKind, element.GetRawText(), 0, null),
    };

    /// <summary>Whether the payload held a value here (JSON null counts as none).</summary>
    public bool IsPresent => Kind is not (JsonValueKind.Undefined or JsonValueKind.Null);
}
