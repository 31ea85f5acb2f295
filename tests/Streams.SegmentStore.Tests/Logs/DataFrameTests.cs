using System.Buffers;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore.Tests.Logs;

public sealed class DataFrameTests
{
    private static (ReadOnlyMemory<byte> Frame, int DataOffset) BuildFrame()
    {
        var builder = new DataFrameBuilder(64 * 1024);
        builder.AddCreate(7, 1234, "scope/stream/0.#epoch.0");
        var dataOffset = builder.AddAppend(7, 0, Guid.Parse("11111111-2222-3333-4444-555555555555"), 41, new ReadOnlySequence<byte>("payload"u8.ToArray()));
        builder.AddSegmentValue(OperationType.Truncate, 7, 3);
        builder.AddSegmentValue(OperationType.Seal, 7, 7);
        builder.AddDelete(7);
        return (builder.Seal(99).ToArray(), dataOffset);
    }

    [Fact]
    public void Operations_round_trip()
    {
        var (frame, dataOffset) = BuildFrame();
        var (sequence, count) = DataFrame.Verify(frame.Span, "test");
        Assert.Equal((99L, 5), (sequence, count));

        var ops = new List<DataFrame.Operation>();
        foreach (var op in DataFrame.Operations(frame))
        {
            ops.Add(op);
        }

        Assert.Equal([OperationType.CreateSegment, OperationType.Append, OperationType.Truncate, OperationType.Seal, OperationType.Delete], ops.Select(o => o.Type));
        Assert.Equal("scope/stream/0.#epoch.0", ops[0].Name);
        Assert.Equal(1234, ops[0].Value);
        Assert.Equal(41, ops[1].LastEventNumber);
        Assert.Equal(Guid.Parse("11111111-2222-3333-4444-555555555555"), ops[1].WriterId);
        Assert.Equal(dataOffset, ops[1].DataOffset);
        Assert.Equal("payload", System.Text.Encoding.UTF8.GetString(frame.Span.Slice(ops[1].DataOffset, ops[1].DataLength)));
        Assert.Equal(3, ops[2].Value);
        Assert.All(ops, o => Assert.Equal(7, o.SegmentId));
    }

    [Fact]
    public void A_short_frame_goes_to_the_cache_in_a_buffer_of_its_size_and_a_full_one_in_its_own()
    {
        var payload = new byte[700];
        Random.Shared.NextBytes(payload);

        using var shortBuilder = new DataFrameBuilder(1024 * 1024);
        shortBuilder.AddAppend(7, 0, Guid.NewGuid(), 1, new ReadOnlySequence<byte>(payload));
        var sealedShort = shortBuilder.Seal(1).ToArray();
        using var shortFrame = shortBuilder.Detach();
        // The cache counts the frame's length: the buffer it holds is at most the next power of two above it.
        Assert.InRange(shortFrame.Memory.Length, sealedShort.Length, 2 * sealedShort.Length);
        Assert.Equal(sealedShort, shortFrame.Memory[..sealedShort.Length].ToArray());
        DataFrame.Verify(shortFrame.Memory.Span[..sealedShort.Length], "test");

        using var fullBuilder = new DataFrameBuilder(64 * 1024);
        while (fullBuilder.HasRoomFor(DataFrame.AppendHeaderSize + payload.Length))
        {
            fullBuilder.AddAppend(7, 0, Guid.NewGuid(), 1, new ReadOnlySequence<byte>(payload));
        }

        var sealedFull = fullBuilder.Seal(2).ToArray();
        using var fullFrame = fullBuilder.Detach();
        Assert.InRange(fullFrame.Memory.Length, sealedFull.Length, 2 * sealedFull.Length);
        Assert.Equal(sealedFull, fullFrame.Memory[..sealedFull.Length].ToArray());
    }

    [Fact]
    public void Any_flipped_byte_is_detected()
    {
        var (frame, _) = BuildFrame();
        for (var i = 0; i < frame.Length; i++)
        {
            var corrupt = frame.ToArray();
            corrupt[i] ^= 0x20;
            Assert.Throws<DataCorruptionException>(() => DataFrame.Verify(corrupt, "test"));
        }
    }

    [Fact]
    public void Truncated_frames_are_detected()
    {
        var (frame, _) = BuildFrame();
        Assert.Throws<DataCorruptionException>(() => DataFrame.Verify(frame.Span[..^1], "test"));
        Assert.Throws<DataCorruptionException>(() => DataFrame.Verify(frame.Span[..10], "test"));
    }

    [Fact]
    public void A_full_frame_refuses_more_operations()
    {
        using var builder = new DataFrameBuilder(200);
        Assert.False(builder.HasRoomFor(500));
        Assert.Throws<InvalidOperationException>(() => builder.AddAppend(1, 0, Guid.Empty, 0, new ReadOnlySequence<byte>(new byte[500])));
    }
}
