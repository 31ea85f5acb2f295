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
}
