using System.Buffers;
using Streams.Common.Grpc;

namespace Streams.Common.Tests.Grpc;

public sealed class GrpcProtocolTests
{
    [Theory]
    [InlineData("100m", 100 * TimeSpan.TicksPerMillisecond)]
    [InlineData("5S", 5 * TimeSpan.TicksPerSecond)]
    [InlineData("2M", 2 * TimeSpan.TicksPerMinute)]
    [InlineData("1H", TimeSpan.TicksPerHour)]
    [InlineData("250u", 2500)]
    [InlineData("900n", 9)]
    public void Parses_grpc_timeouts(string header, long ticks)
    {
        Assert.True(GrpcProtocol.TryParseTimeout(header, out var timeout));
        Assert.Equal(ticks, timeout.Ticks);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10")]
    [InlineData("m")]
    [InlineData("10x")]
    [InlineData("-5S")]
    [InlineData("123456789S")]
    public void Rejects_malformed_timeouts(string header) => Assert.False(GrpcProtocol.TryParseTimeout(header, out _));

    [Theory]
    [InlineData(0.5)]
    [InlineData(1_500)]
    [InlineData(200_000)]
    [InlineData(86_400_000)]
    public void Formatted_timeouts_fit_and_never_shorten(double milliseconds)
    {
        var timeout = TimeSpan.FromMilliseconds(milliseconds);
        var header = GrpcProtocol.FormatTimeout(timeout);
        Assert.InRange(header.Length, 2, 9);
        Assert.True(GrpcProtocol.TryParseTimeout(header, out var parsed));
        Assert.True(parsed >= timeout);
        Assert.True(parsed - timeout < TimeSpan.FromMinutes(1) || parsed.TotalMilliseconds < milliseconds * 1.01);
    }

    [Theory]
    [InlineData("plain message")]
    [InlineData("100% done")]
    [InlineData("línea ✓\nnext")]
    public void Status_messages_round_trip_through_percent_encoding(string message)
    {
        var encoded = GrpcProtocol.EncodeMessage(message);
        Assert.All(encoded, c => Assert.InRange(c, ' ', '~'));
        Assert.Equal(message, GrpcProtocol.DecodeMessage(encoded));
    }

    [Fact]
    public void Reads_messages_only_when_whole()
    {
        var bytes = new byte[5 + 3 + 5 + 2];
        GrpcProtocol.WriteMessageHeader(bytes, 3);
        GrpcProtocol.WriteMessageHeader(bytes.AsSpan(8), 2);
        var buffer = new ReadOnlySequence<byte>(bytes[..10]);
        Assert.True(GrpcProtocol.TryReadMessage(ref buffer, 100, out var first));
        Assert.Equal(3, first.Length);
        Assert.False(GrpcProtocol.TryReadMessage(ref buffer, 100, out _));
        buffer = new ReadOnlySequence<byte>(bytes[8..]);
        Assert.True(GrpcProtocol.TryReadMessage(ref buffer, 100, out var second));
        Assert.Equal(2, second.Length);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Refuses_oversized_messages_from_the_header_alone()
    {
        var header = new byte[5];
        GrpcProtocol.WriteMessageHeader(header, 1000);
        var buffer = new ReadOnlySequence<byte>(header);
        var error = Assert.Throws<RpcException>(() => GrpcProtocol.TryReadMessage(ref buffer, 999, out _));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public void Refuses_compressed_messages()
    {
        var header = new byte[5];
        GrpcProtocol.WriteMessageHeader(header, 0, compressed: true);
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(StatusCode.Unimplemented, Assert.Throws<RpcException>(() => GrpcProtocol.TryReadMessage(ref buffer, 10, out _)).StatusCode);
    }

    [Theory]
    [InlineData(404, StatusCode.Unimplemented)]
    [InlineData(503, StatusCode.Unavailable)]
    [InlineData(401, StatusCode.Unauthenticated)]
    [InlineData(500, StatusCode.Unknown)]
    public void Maps_http_statuses(int http, StatusCode expected) => Assert.Equal(expected, GrpcProtocol.FromHttpStatus(http));
}
