using System.ComponentModel;
using System.Globalization;

namespace Streams.Common.Configuration;

/// <summary>
/// A size setting: a whole number of bytes, written in configuration as a number with an optional binary unit
/// ("268435456", "256MiB", "4 KiB", "1Gi"). Sizes and durations follow one convention across every section: a size is
/// a <see cref="ByteSize"/>, a duration is a <see cref="TimeSpan"/> ("00:00:30"), and neither carries a unit in its
/// name. Decimal units (KB, MB) are refused rather than guessed at.
/// </summary>
[TypeConverter(typeof(ByteSizeConverter))]
public readonly record struct ByteSize(long Bytes) : IComparable<ByteSize>
{
    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("Ti", 1L << 40), ("Gi", 1L << 30), ("Mi", 1L << 20), ("Ki", 1L << 10),
        ("B", 1),
    ];

    /// <summary><paramref name="count"/> KiB.</summary>
    public static ByteSize KiB(long count) => new(checked(count << 10));

    /// <summary><paramref name="count"/> MiB.</summary>
    public static ByteSize MiB(long count) => new(checked(count * (1L << 20)));

    /// <summary><paramref name="count"/> GiB.</summary>
    public static ByteSize GiB(long count) => new(checked(count * (1L << 30)));

    /// <summary>The size as an <see cref="int"/>, for buffers and frames (throws past 2 GiB).</summary>
    public int ToInt32() => checked((int)Bytes);

    /// <summary>Parses "N", "N B", "N KiB" (or "Ki"), "N MiB", "N GiB", "N TiB"; throws with the accepted forms.</summary>
    public static ByteSize Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var factor = 1L;
        foreach (var (suffix, unitFactor) in Units)
        {
            if (trimmed.EndsWith(suffix, StringComparison.Ordinal))
            {
                trimmed = trimmed[..^suffix.Length].TrimEnd();
                factor = unitFactor;
                break;
            }
        }

        if (!long.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            throw new FormatException($"'{text}' is not a size: use a whole number of bytes, optionally with KiB, MiB, GiB or TiB (e.g. 256MiB).");
        }

        try
        {
            return new ByteSize(checked(count * factor));
        }
        catch (OverflowException)
        {
            throw new FormatException($"'{text}' is too large a size.");
        }
    }

    /// <summary>The size in the largest binary unit that divides it ("256MiB", "1000B").</summary>
    public override string ToString()
    {
        foreach (var (suffix, factor) in Units)
        {
            if (suffix.Length == 3 && Bytes != 0 && Bytes % factor == 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{Bytes / factor}{suffix}");
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{Bytes}B");
    }

    /// <inheritdoc/>
    public int CompareTo(ByteSize other) => Bytes.CompareTo(other.Bytes);

    /// <summary>Orders sizes.</summary>
    public static bool operator <(ByteSize left, ByteSize right) => left.Bytes < right.Bytes;

    /// <summary>Orders sizes.</summary>
    public static bool operator >(ByteSize left, ByteSize right) => left.Bytes > right.Bytes;

    /// <summary>Orders sizes.</summary>
    public static bool operator <=(ByteSize left, ByteSize right) => left.Bytes <= right.Bytes;

    /// <summary>Orders sizes.</summary>
    public static bool operator >=(ByteSize left, ByteSize right) => left.Bytes >= right.Bytes;
}

/// <summary>Lets configuration binding read a <see cref="ByteSize"/> from its text form.</summary>
public sealed class ByteSizeConverter : TypeConverter
{
    /// <inheritdoc/>
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) =>
        sourceType == typeof(string) || base.CanConvertFrom(context, sourceType);

    /// <inheritdoc/>
    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) =>
        value is string text ? ByteSize.Parse(text) : base.ConvertFrom(context, culture, value);

    /// <inheritdoc/>
    public override object? ConvertTo(ITypeDescriptorContext? context, CultureInfo? culture, object? value, Type destinationType) =>
        destinationType == typeof(string) && value is ByteSize size ? size.ToString() : base.ConvertTo(context, culture, value, destinationType);
}
