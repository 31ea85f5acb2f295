using System.IO.Hashing;
using System.Text;

namespace Streams.Common.Naming;

/// <summary>
/// Maps segments onto segment containers: XXH64 of the qualified segment name, modulo the container count.
/// The container count is fixed for the life of a cluster; changing it would move segments between containers.
/// </summary>
public static class ContainerMapper
{
    /// <summary>The container that owns <paramref name="segmentName"/>.</summary>
    public static int ContainerOf(string segmentName, int containerCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(containerCount, 1);
        return (int)(XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(segmentName)) % (ulong)containerCount);
    }
}
