using System.Text;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Load;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// Bodies of the log records that carry writer records and load seeds (all integers little-endian, doubles IEEE 754):
/// <list type="bullet">
/// <item><see cref="OperationType.InheritWriters"/>: segmentId i64 | count i32 | (writerId (16 bytes) | ranges i32 |
/// (keyStart f64 | keyEnd f64 | lastEventNumber i64)*)*</item>
/// <item>a load seed, after the name of a <see cref="OperationType.CreateSegment"/> (older versions read the name by its
/// length and never see it): windows u8 | (eventRate f64 | byteRate f64)* | ageMs i64</item>
/// </list>
/// </summary>
internal static class WriterAndLoadRecords
{
    /// <summary>Bytes of one inherited writer with <paramref name="ranges"/> ranges.</summary>
    public static int InheritedWriterSize(int ranges) => 16 + 4 + (ranges * 24);

    public static byte[] Inherit(long segmentId, IReadOnlyList<(Guid Writer, InheritedRange[] Ranges)> writers)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            Span<byte> id = stackalloc byte[16];
            w.Write(segmentId);
            w.Write(writers.Count);
            foreach (var (writer, ranges) in writers)
            {
                writer.TryWriteBytes(id);
                w.Write(id);
                WriteRanges(w, ranges);
            }
        }

        return stream.ToArray();
    }

    public static (long SegmentId, List<(Guid Writer, InheritedRange[] Ranges)> Writers) ReadInherit(ReadOnlyMemory<byte> body, string where) =>
        StorageRecords.Parse(body, where, r =>
        {
            var segmentId = r.ReadInt64();
            var count = r.ReadInt32();
            var writers = new List<(Guid, InheritedRange[])>(Math.Min(count, 1 << 16));
            Span<byte> id = stackalloc byte[16];
            for (var i = 0; i < count; i++)
            {
                r.BaseStream.ReadExactly(id);
                var writer = new Guid(id);
                writers.Add((writer, ReadRanges(r)));
            }

            return (segmentId, writers);
        });

    public static byte[] Seed(LoadState seed)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            WriteRates(w, seed);
        }

        return stream.ToArray();
    }

    public static LoadState ReadSeed(ReadOnlyMemory<byte> body, string where) => StorageRecords.Parse(body, where, r => ReadRates(r, []));

    /// <summary>Inherited ranges: count i32 | (keyStart f64 | keyEnd f64 | lastEventNumber i64)* (also in checkpoints).</summary>
    internal static void WriteRanges(BinaryWriter w, IReadOnlyList<InheritedRange> ranges)
    {
        w.Write(ranges.Count);
        foreach (var range in ranges)
        {
            w.Write(range.KeyStart);
            w.Write(range.KeyEnd);
            w.Write(range.LastEventNumber);
        }
    }

    internal static InheritedRange[] ReadRanges(BinaryReader r)
    {
        var ranges = new InheritedRange[r.ReadInt32()];
        for (var k = 0; k < ranges.Length; k++)
        {
            ranges[k] = new InheritedRange(r.ReadDouble(), r.ReadDouble(), r.ReadInt64());
        }

        return ranges;
    }

    /// <summary>Rates and age, as in a seed (also in checkpoints, followed there by the key histogram).</summary>
    internal static void WriteRates(BinaryWriter w, LoadState load)
    {
        w.Write((byte)load.EventRates.Length);
        for (var i = 0; i < load.EventRates.Length; i++)
        {
            w.Write(load.EventRates[i]);
            w.Write(load.ByteRates[i]);
        }

        w.Write(load.AgeMs);
    }

    internal static LoadState ReadRates(BinaryReader r, double[] keyBytes)
    {
        var windows = r.ReadByte();
        var (events, bytes) = (new double[windows], new double[windows]);
        for (var i = 0; i < windows; i++)
        {
            events[i] = r.ReadDouble();
            bytes[i] = r.ReadDouble();
        }

        return new LoadState(events, bytes, r.ReadInt64(), keyBytes);
    }
}
