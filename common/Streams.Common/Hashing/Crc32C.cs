using System.Buffers.Binary;
using System.Numerics;

namespace Streams.Common.Hashing;

/// <summary>CRC-32C (Castagnoli), hardware-accelerated through <see cref="BitOperations.Crc32C(uint, ulong)"/>.</summary>
public static class Crc32C
{
    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(0xFFFFFFFF, data);

    /// <summary>The CRC-32C of <paramref name="data"/>, over all its segments.</summary>
    public static uint Compute(in System.Buffers.ReadOnlySequence<byte> data)
    {
        var crc = 0xFFFFFFFF;
        foreach (var segment in data)
        {
            crc = Append(crc, segment.Span);
        }

        return ~crc;
    }

    /// <summary>Continues a running (not yet inverted) CRC over more data.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        }

        for (; i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return crc;
    }
}
