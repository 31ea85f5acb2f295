using System.Text;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Tests.Logs;

public sealed class ContainerCheckpointTests
{
    private static readonly Guid Writer = Guid.Parse("11111111-2222-3333-4444-555555555555");

    [Fact]
    public void A_checkpoint_round_trips_with_writers_and_chunks()
    {
        var checkpoint = new ContainerCheckpoint(42, [
            new CheckpointSegment(7, "s/t/0.#epoch.0", 1000, 5000, 100, true, 4000, [new ChunkInfo("c/7/0", 0, 4000, 0xDEADBEEF)], [new CheckpointWriter(Writer, 99, 1_700_000_000_000)]),
            new CheckpointSegment(8, "s/t/1.#epoch.0", 2000, 0, 0, false, 0, [], []),
        ]);

        var read = ContainerCheckpoint.Deserialize(checkpoint.Serialize(), "test");
        Assert.Equal(42, read.NextSegmentId);
        Assert.Equal(2, read.Segments.Count);
        var first = read.Segments[0];
        Assert.Equal((7L, "s/t/0.#epoch.0", 1000L, 5000L, 100L, true, 4000L), (first.Id, first.Name, first.CreatedAtUnixMs, first.Length, first.StartOffset, first.Sealed, first.StorageLength));
        Assert.Equal(new ChunkInfo("c/7/0", 0, 4000, 0xDEADBEEF), first.Chunks.Single());
        Assert.Equal(new CheckpointWriter(Writer, 99, 1_700_000_000_000), first.Writers.Single());
        Assert.Empty(read.Segments[1].Writers);
    }

    [Fact]
    public void A_checkpoint_round_trips_inherited_ranges_and_measured_load()
    {
        var keys = new double[32];
        keys[5] = 123.5;
        var load = new SegmentStore.Load.LoadState([1.5, 2, 3, 4], [100, 200, 300, 400], 777_000, keys);
        var inherited = new SegmentStore.Containers.InheritedRange(0.25, 0.5, 17);
        var checkpoint = new ContainerCheckpoint(3, [
            new CheckpointSegment(1, "s/t/0.#epoch.1", 0, 0, 0, false, 0, [], [new CheckpointWriter(Writer, -1, 5, [inherited])], load),
            new CheckpointSegment(2, "s/t/1.#epoch.1", 0, 0, 0, false, 0, [], [], null),
        ]);

        var read = ContainerCheckpoint.Deserialize(checkpoint.Serialize(), "test");

        var writer = read.Segments[0].Writers.Single();
        Assert.Equal((-1L, 5L), (writer.EventNumber, writer.LastSeenUnixMs));
        Assert.Equal([inherited], writer.Inherited!);
        var readLoad = read.Segments[0].Load!;
        Assert.Equal(load.EventRates, readLoad.EventRates);
        Assert.Equal(load.ByteRates, readLoad.ByteRates);
        Assert.Equal(load.KeyBytes, readLoad.KeyBytes);
        Assert.Equal(777_000, readLoad.AgeMs);
        Assert.Null(read.Segments[1].Load);
    }

    [Fact]
    public void A_checkpoint_of_format_1_is_still_read_with_writer_times_unknown()
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write((byte)1);
            w.Write(9L); // next segment id
            w.Write(1); // segments
            w.Write(3L);
            w.Write("s/t/0.#epoch.0");
            w.Write(1000L);
            w.Write(50L);
            w.Write(0L);
            w.Write(false);
            w.Write(0L);
            w.Write(0); // chunks
            w.Write(1); // writers: id, event number (no time in format 1)
            w.Write(Writer.ToByteArray());
            w.Write(12L);
        }

        var read = ContainerCheckpoint.Deserialize(stream.ToArray(), "test");
        Assert.Equal(new CheckpointWriter(Writer, 12, 0), read.Segments.Single().Writers.Single());
    }

    [Fact]
    public void An_unknown_format_or_a_cut_checkpoint_is_reported_as_corruption()
    {
        var body = new ContainerCheckpoint(1, [new CheckpointSegment(1, "s/t/0.#epoch.0", 0, 0, 0, false, 0, [], [new CheckpointWriter(Writer, 1, 1)])]).Serialize();
        Assert.Throws<DataCorruptionException>(() => ContainerCheckpoint.Deserialize(body.AsMemory(0, body.Length - 4), "test"));
        body[0] = 9;
        Assert.Contains("format 9 is unknown", Assert.Throws<DataCorruptionException>(() => ContainerCheckpoint.Deserialize(body, "test")).Message, StringComparison.Ordinal);
    }
}
