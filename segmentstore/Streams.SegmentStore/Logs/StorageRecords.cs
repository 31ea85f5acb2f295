using System.Text;

namespace Streams.SegmentStore.Logs;

/// <summary>One chunk of a segment in Tier 2: the segment's bytes [Start, Start + Length), with their CRC-32C.</summary>
public sealed record ChunkInfo(string Name, long Start, int Length, uint Crc)
{
    public long End => Start + Length;
}

/// <summary>A segment's state in a <see cref="ContainerCheckpoint"/>.</summary>
internal sealed record CheckpointSegment(
    long Id,
    string Name,
    long CreatedAtUnixMs,
    long Length,
    long StartOffset,
    bool Sealed,
    long StorageLength,
    IReadOnlyList<ChunkInfo> Chunks,
    IReadOnlyList<CheckpointWriter> Writers,
    Load.LoadState? Load = null);

/// <summary>
/// A writer's deduplication state in a checkpoint: its highest event number, when it last appended (0: unknown) and
/// what it inherited from the segment's predecessors.
/// </summary>
public readonly record struct CheckpointWriter(Guid Id, long EventNumber, long LastSeenUnixMs, IReadOnlyList<Containers.InheritedRange>? Inherited = null);

/// <summary>
/// A container's whole metadata at one point of its log: every segment (lengths, start offsets, sealing, writers'
/// event numbers for deduplication, Tier 2 chunk lists) and the next segment id. Replaying a checkpoint replaces the
/// state built so far, so the log can be truncated at a checkpoint once every byte before it is in Tier 2.
/// </summary>
internal sealed record ContainerCheckpoint(long NextSegmentId, IReadOnlyList<CheckpointSegment> Segments)
{
    /// <summary>
    /// Format 2 added each writer's last append time; format 3 each writer's inherited ranges and each segment's
    /// measured load. Formats 1 and 2 are still read (their segments start with no load and no inherited ranges).
    /// </summary>
    private const byte FormatVersion = 3;

    public byte[] Serialize()
    {
        using var stream = new MemoryStream();
        WriteTo(stream);
        return stream.ToArray();
    }

    /// <summary>Writes the checkpoint to <paramref name="stream"/> (a <see cref="PagedBuffer"/> for the log).</summary>
    public void WriteTo(Stream stream)
    {
        // Millions of small writes: buffered, they cost a memory copy each instead of a call into the stream.
        using var buffered = new BufferedStream(stream, 64 * 1024);
        using var w = new BinaryWriter(buffered, Encoding.UTF8, leaveOpen: true);
        Span<byte> id = stackalloc byte[16];
        w.Write(FormatVersion);
        w.Write(NextSegmentId);
        w.Write(Segments.Count);
        foreach (var s in Segments)
        {
            w.Write(s.Id);
            w.Write(s.Name);
            w.Write(s.CreatedAtUnixMs);
            w.Write(s.Length);
            w.Write(s.StartOffset);
            w.Write(s.Sealed);
            w.Write(s.StorageLength);
            w.Write(s.Chunks.Count);
            foreach (var c in s.Chunks)
            {
                StorageRecords.WriteChunk(w, c);
            }

            w.Write(s.Writers.Count);
            foreach (var writer in s.Writers)
            {
                writer.Id.TryWriteBytes(id);
                w.Write(id);
                w.Write(writer.EventNumber);
                w.Write(writer.LastSeenUnixMs);
                WriterAndLoadRecords.WriteRanges(w, writer.Inherited ?? []);
            }

            WriteLoad(w, s.Load);
        }
    }

    private static void WriteLoad(BinaryWriter w, Load.LoadState? load)
    {
        w.Write(load is not null);
        if (load is null)
        {
            return;
        }

        WriterAndLoadRecords.WriteRates(w, load);
        w.Write((byte)load.KeyBytes.Length);
        foreach (var b in load.KeyBytes)
        {
            w.Write(b);
        }
    }

    private static Load.LoadState? ReadLoad(BinaryReader r)
    {
        if (!r.ReadBoolean())
        {
            return null;
        }

        var rates = WriterAndLoadRecords.ReadRates(r, []);
        var keys = new double[r.ReadByte()];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = r.ReadDouble();
        }

        return rates with { KeyBytes = keys };
    }

    public static ContainerCheckpoint Deserialize(ReadOnlyMemory<byte> body, string where) => StorageRecords.Parse(body, where, r => Read(r, where));

    /// <summary>Reads a checkpoint from its pages' data.</summary>
    public static ContainerCheckpoint Deserialize(IReadOnlyList<ReadOnlyMemory<byte>> pages, string where) =>
        StorageRecords.Parse(new PagesStream(pages), where, r => Read(r, where));

    private static ContainerCheckpoint Read(BinaryReader r, string where)
    {
        var version = r.ReadByte();
        if (version is not (1 or 2 or FormatVersion))
        {
            throw new DataCorruptionException($"{where}: checkpoint format {version} is unknown (this version reads {FormatVersion}).");
        }

        var next = r.ReadInt64();
        var count = r.ReadInt32();
        var segments = new List<CheckpointSegment>(count);
        Span<byte> id = stackalloc byte[16];
        for (var i = 0; i < count; i++)
        {
            var segmentId = r.ReadInt64();
            var name = r.ReadString();
            var created = r.ReadInt64();
            var length = r.ReadInt64();
            var start = r.ReadInt64();
            var isSealed = r.ReadBoolean();
            var storageLength = r.ReadInt64();
            var chunkCount = r.ReadInt32();
            var chunks = new List<ChunkInfo>(chunkCount);
            for (var c = 0; c < chunkCount; c++)
            {
                chunks.Add(StorageRecords.ReadChunk(r));
            }

            var writerCount = r.ReadInt32();
            var writers = new List<CheckpointWriter>(writerCount);
            for (var c = 0; c < writerCount; c++)
            {
                r.BaseStream.ReadExactly(id);
                var (writer, eventNumber, lastSeen) = (new Guid(id), r.ReadInt64(), version >= 2 ? r.ReadInt64() : 0);
                var inherited = version >= 3 ? WriterAndLoadRecords.ReadRanges(r) : [];
                writers.Add(new(writer, eventNumber, lastSeen, inherited.Length == 0 ? null : inherited));
            }

            var load = version >= 3 ? ReadLoad(r) : null;
            segments.Add(new CheckpointSegment(segmentId, name, created, length, start, isSealed, storageLength, chunks, writers, load));
        }

        return new ContainerCheckpoint(next, segments);
    }
}

/// <summary>Bodies of the Tier 2 operations of the log (<see cref="OperationType.StorageFlushed"/>).</summary>
internal static class StorageRecords
{
    public static byte[] Flushed(long segmentId, ChunkInfo chunk)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(segmentId);
            WriteChunk(w, chunk);
        }

        return stream.ToArray();
    }

    public static (long SegmentId, ChunkInfo Chunk) ReadFlushed(ReadOnlyMemory<byte> body, string where) =>
        Parse(body, where, r => (r.ReadInt64(), ReadChunk(r)));

    internal static void WriteChunk(BinaryWriter w, ChunkInfo chunk)
    {
        w.Write(chunk.Name);
        w.Write(chunk.Start);
        w.Write(chunk.Length);
        w.Write(chunk.Crc);
    }

    internal static ChunkInfo ReadChunk(BinaryReader r) => new(r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadUInt32());

    internal static T Parse<T>(ReadOnlyMemory<byte> body, string where, Func<BinaryReader, T> read) =>
        Parse(new MemoryStream(body.ToArray(), writable: false), where, read);

    internal static T Parse<T>(Stream stream, string where, Func<BinaryReader, T> read)
    {
        try
        {
            using var reader = new BinaryReader(stream, Encoding.UTF8);
            return read(reader);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException)
        {
            throw new DataCorruptionException($"{where}: a storage record is malformed ({e.Message}).");
        }
    }
}
