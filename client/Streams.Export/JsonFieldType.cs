namespace Streams.Export;

/// <summary>The column type of a field taken from JSON payloads.</summary>
public enum JsonFieldType
{
    /// <summary>UTF-8 text: a JSON string as is; a number, boolean, object or array as its JSON text.</summary>
    String,

    /// <summary>A 64-bit signed integer: a JSON number without fraction or exponent that fits.</summary>
    Int64,

    /// <summary>A 64-bit float: any JSON number.</summary>
    Float64,

    /// <summary>A JSON true or false.</summary>
    Boolean,
}
