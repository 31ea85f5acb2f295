using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Streams.Common.Naming;

/// <summary>
/// A stream segment's identity: scope, stream, segment number and the epoch that created it.
/// Its qualified name is "scope/stream/number.#epoch.E"; its id packs (epoch, number) into 64 bits.
/// </summary>
public readonly record struct SegmentName(string Scope, string Stream, int Number, int Epoch)
{
    private const string EpochMarker = ".#epoch.";

    /// <summary>(epoch &lt;&lt; 32) | number.</summary>
    public long Id => ComposeId(Epoch, Number);

    /// <summary>"scope/stream".</summary>
    public string StreamName => Scope + "/" + Stream;

    /// <summary>The segment with the given id in a stream.</summary>
    public static SegmentName FromId(string scope, string stream, long id) =>
        new(scope, stream, (int)(id & 0xFFFFFFFF), (int)(id >> 32));

    /// <summary>Packs an epoch and a segment number into a segment id.</summary>
    public static long ComposeId(int epoch, int number) => ((long)epoch << 32) | (uint)number;

    /// <summary>Parses a qualified segment name; returns false if it is not one.</summary>
    public static bool TryParse(string? qualified, [NotNullWhen(true)] out SegmentName? name)
    {
        name = null;
        if (string.IsNullOrEmpty(qualified))
        {
            return false;
        }

        var parts = qualified.Split('/');
        if (parts.Length != 3 || NameValidator.Validate(parts[0], "scope") is not null
            || NameValidator.Validate(parts[1], "stream") is not null)
        {
            return false;
        }

        var marker = parts[2].IndexOf(EpochMarker, StringComparison.Ordinal);
        if (marker <= 0
            || !int.TryParse(parts[2].AsSpan(0, marker), NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            || !int.TryParse(parts[2].AsSpan(marker + EpochMarker.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
        {
            return false;
        }

        name = new SegmentName(parts[0], parts[1], number, epoch);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Scope}/{Stream}/{Number}{EpochMarker}{Epoch}");
}
