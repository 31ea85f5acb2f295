using System.Buffers;
using System.IO.Pipelines;
using Grpc.Core;
using Streams.Common.Wire;

namespace Streams.Common.Tests.Wire;

public sealed class FramedMessageReaderTests
{
    [Fact]
    public async Task Returns_messages_split_across_writes_and_then_ends()
    {
        var pipe = new Pipe();
        var reader = new FramedMessageReader(pipe.Reader, 1024);
        var frame = new byte[] { 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9 };
        foreach (var b in frame)
        {
            await pipe.Writer.WriteAsync(new[] { b }, TestContext.Current.CancellationToken);
        }

        await pipe.Writer.CompleteAsync();
        Assert.True(await reader.MoveNextAsync(TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 1, 2, 3 }, reader.Current.ToArray());
        Assert.True(await reader.MoveNextAsync(TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 9 }, reader.Current.ToArray());
        Assert.False(await reader.MoveNextAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_stream_that_ends_inside_a_message_is_an_error()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(new byte[] { 0, 0, 0, 5, 1, 2 }, TestContext.Current.CancellationToken);
        await pipe.Writer.CompleteAsync();
        var reader = new FramedMessageReader(pipe.Reader, 1024);
        Assert.Equal(StatusCode.Internal, (await Assert.ThrowsAsync<RpcException>(() => reader.MoveNextAsync().AsTask())).StatusCode);
    }

    [Fact]
    public async Task Oversized_frames_are_refused_before_their_body_arrives()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(new byte[] { 0x7F, 0, 0, 0 }, TestContext.Current.CancellationToken);
        var reader = new FramedMessageReader(pipe.Reader, 1024);
        Assert.Equal(StatusCode.ResourceExhausted, (await Assert.ThrowsAsync<RpcException>(() => reader.MoveNextAsync().AsTask())).StatusCode);
    }
}
