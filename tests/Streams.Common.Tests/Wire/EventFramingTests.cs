using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Streams.Common.Wire;

namespace Streams.Common.Tests.Wire;

public sealed class EventFramingTests
{
    private static byte[] Frame(string payload, string? key = null)
    {
        var body = Encoding.UTF8.GetBytes(payload);
        var keyBytes = key is null ? [] : Encoding.UTF8.GetBytes(key);
        var frame = new byte[EventFraming.FrameSize(body.Length, key is null ? -1 : keyBytes.Length)];
        EventFraming.Write(frame, body, keyBytes, key is not null);
        return frame;
    }

    [Fact]
    public void Events_round_trip_with_and_without_keys()
    {
        var data = new ReadOnlySequence<byte>([.. Frame("one"), .. Frame("two", "k-2"), .. Frame(string.Empty, string.Empty)]);
        Assert.Null(EventFraming.Validate(data, 3));

        Assert.True(EventFraming.TryReadEvent(ref data, out var first));
        Assert.False(first.HasKey);
        Assert.Equal("one", Encoding.UTF8.GetString(first.Payload));
        Assert.Equal(7, first.FrameLength);

        Assert.True(EventFraming.TryReadEvent(ref data, out var second));
        Assert.True(second.HasKey);
        Assert.Equal("k-2", Encoding.UTF8.GetString(second.Key));
        Assert.Equal("two", Encoding.UTF8.GetString(second.Payload));

        Assert.True(EventFraming.TryReadEvent(ref data, out var third));
        Assert.True(third.HasKey);
        Assert.Equal(0, third.Payload.Length);
        Assert.True(data.IsEmpty);
    }

    [Fact]
    public void Partial_events_wait_for_more_bytes()
    {
        var frame = Frame("hello", "key");
        for (var cut = 0; cut < frame.Length; cut++)
        {
            var partial = new ReadOnlySequence<byte>(frame[..cut]);
            Assert.False(EventFraming.TryReadEvent(ref partial, out _));
        }
    }

    [Fact]
    public void Validation_names_what_is_wrong()
    {
        var two = new ReadOnlySequence<byte>([.. Frame("a"), .. Frame("b")]);
        Assert.Contains("holds 2 events but declares 3", EventFraming.Validate(two, 3));
        Assert.Contains("ends inside", EventFraming.Validate(new ReadOnlySequence<byte>(Frame("abc")[..5]), 1));

        var huge = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(huge, EventFraming.MaxEventSize + 1);
        Assert.Contains("invalid event length", EventFraming.Validate(new ReadOnlySequence<byte>(huge), 1));

        var badKey = Frame("payload", "key");
        BinaryPrimitives.WriteUInt16BigEndian(badKey.AsSpan(4), 60_000);
        Assert.Contains("routing key length", EventFraming.Validate(new ReadOnlySequence<byte>(badKey), 1));
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })] // never in UTF-8
    [InlineData(new byte[] { (byte)'k', 0xC3 })] // a two-byte sequence cut short
    [InlineData(new byte[] { 0xC0, 0x80 })] // an overlong NUL
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // a UTF-16 surrogate
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })] // above U+10FFFF
    public void Stored_routing_keys_must_be_utf8(byte[] key)
    {
        var good = Frame("first", "schlüssel ✓");
        var bad = RawFrame(key, "second"u8);
        Assert.Null(EventFraming.Validate(new ReadOnlySequence<byte>(good), 1));
        Assert.Equal("the routing key stored with event 1 (counting from 0) is not valid UTF-8", EventFraming.Validate(new ReadOnlySequence<byte>([.. good, .. bad]), 2));

        // A key split across buffers is checked whole: its bytes are valid or not wherever the split falls.
        byte[] both = [.. good, .. bad];
        for (var cut = 1; cut < both.Length; cut++)
        {
            Assert.NotNull(EventFraming.Validate(Split(both, cut), 2));
        }
    }

    [Fact]
    public void A_valid_key_split_across_buffers_passes()
    {
        var frame = Frame("payload", new string('ü', 400));
        for (var cut = 1; cut < frame.Length; cut += 7)
        {
            Assert.Null(EventFraming.Validate(Split(frame, cut), 1));
        }
    }

    /// <summary>A frame with a stored key of any bytes.</summary>
    private static byte[] RawFrame(byte[] key, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[EventFraming.FrameSize(payload.Length, key.Length)];
        EventFraming.Write(frame, payload, key, storeKey: true);
        return frame;
    }

    /// <summary>The bytes as a sequence of two buffers, split at <paramref name="cut"/>.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes, int cut)
    {
        var first = new Buffer(bytes.AsMemory(0, cut), 0);
        var second = new Buffer(bytes.AsMemory(cut), cut);
        first.SetNext(second);
        return new ReadOnlySequence<byte>(first, 0, second, second.Memory.Length);
    }

    private sealed class Buffer : ReadOnlySequenceSegment<byte>
    {
        public Buffer(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public void SetNext(Buffer next) => Next = next;
    }
}
