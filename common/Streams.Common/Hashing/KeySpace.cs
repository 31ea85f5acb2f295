using System.IO.Hashing;
using System.Text;

namespace Streams.Common.Hashing;

/// <summary>
/// Maps routing keys to points of the key space [0, 1). The mapping is part of the wire contract
/// (docs/routing-keys.md): point = (XXH64(UTF-8 bytes of the key, seed 0) &gt;&gt; 11) / 2^53.
/// The top 53 bits are used because a double holds exactly 53 bits of mantissa. XXH64 is System.IO.Hashing's: fast,
/// well distributed, and available in every language, so other clients map keys to segments exactly as we do.
/// </summary>
public static class KeySpace
{
    private const double TwoPow53 = 9007199254740992.0;

    /// <summary>The key-space point of a routing key.</summary>
    public static double PointOf(string routingKey)
    {
        ArgumentNullException.ThrowIfNull(routingKey);
        var max = Encoding.UTF8.GetMaxByteCount(routingKey.Length);
        Span<byte> stack = stackalloc byte[256];
        var buffer = max <= stack.Length ? stack : new byte[max];
        var written = Encoding.UTF8.GetBytes(routingKey, buffer);
        return PointOf(buffer[..written]);
    }

    /// <summary>The key-space point of a routing key given as UTF-8 bytes.</summary>
    public static double PointOf(ReadOnlySpan<byte> utf8RoutingKey) =>
        (XxHash64.HashToUInt64(utf8RoutingKey) >> 11) / TwoPow53;
}
