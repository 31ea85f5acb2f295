namespace Streams.Common.Naming;

/// <summary>
/// Rules for scope and stream names: 1 to 255 characters of ASCII letters, digits, '-', '_' and '.',
/// starting with a letter or a digit. The rules keep names safe as path components in metadata stores
/// and Tier 2 object keys.
/// </summary>
public static class NameValidator
{
    /// <summary>Longest allowed scope or stream name.</summary>
    public const int MaxLength = 255;

    /// <summary>Returns null if <paramref name="name"/> is a valid scope or stream name, else why it is not.</summary>
    public static string? Validate(string? name, string what)
    {
        if (string.IsNullOrEmpty(name))
        {
            return $"The {what} name is empty.";
        }

        if (name.Length > MaxLength)
        {
            return $"The {what} name is {name.Length} characters long; the limit is {MaxLength}.";
        }

        if (!char.IsAsciiLetterOrDigit(name[0]))
        {
            return $"The {what} name '{name}' must start with a letter or a digit.";
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_' && c != '.')
            {
                return $"The {what} name '{name}' contains '{c}'; use letters, digits, '-', '_' and '.'.";
            }
        }

        return null;
    }
}
