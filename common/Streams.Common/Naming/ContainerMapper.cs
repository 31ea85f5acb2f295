using System.IO.Hashing;
using System.Text;

namespace Streams.Common.Naming;

/// <summary>
/// Maps segments onto segment containers: XXH64 of "scope/stream/number" (the qualified name without its
/// ".#epoch.E" part), modulo the container count. Leaving the epoch out keeps every epoch of a segment number, and
/// anything named after it, in one container, so merging into it stays local to that container. The container count
/// is fixed for the life of a cluster; changing it would move segments between containers.
/// </summary>
public static class ContainerMapper
{
    private const string EpochMarker = ".#epoch.";

    /// <summary>The container that owns <paramref name="segmentName"/> (a qualified segment name, with or without its epoch).</summary>
    public static int ContainerOf(string segmentName, int containerCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(containerCount, 1);
        var marker = segmentName.IndexOf(EpochMarker, StringComparison.Ordinal);
        var placed = marker < 0 ? segmentName.AsSpan() : segmentName.AsSpan(0, marker);
        Span<byte> stack = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetMaxByteCount(placed.Length) <= stack.Length ? stack : new byte[Encoding.UTF8.GetMaxByteCount(placed.Length)];
        var length = Encoding.UTF8.GetBytes(placed, bytes);
        return (int)(XxHash64.HashToUInt64(bytes[..length]) % (ulong)containerCount);
    }
}
