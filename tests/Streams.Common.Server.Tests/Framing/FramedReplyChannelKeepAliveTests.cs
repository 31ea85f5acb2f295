using System.IO.Pipelines;
using Streams.Common.Server.Framing;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Server.Tests.Framing;

/// <summary>Keep-alive answers sent ahead of queued replies, which keep their order.</summary>
public sealed class FramedReplyChannelKeepAliveTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_keep_alive_answer_goes_out_before_the_replies_still_queued_and_they_keep_their_order()
    {
        // A peer that does not read: the pipe takes one large reply and then makes the sender wait.
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4096, resumeWriterThreshold: 2048, minimumSegmentSize: 4096));
        var channel = new FramedReplyChannel(pipe.Writer);
        channel.Send(Reply(1, 16 * 1024));
        await WaitUntilAsync(() => pipe.Reader.TryRead(out var peek) && Peek(pipe.Reader, peek));
        for (var i = 2; i <= 50; i++)
        {
            channel.Send(Reply(i, 64));
        }

        channel.SendAhead(new DataReply { KeepAlive = new KeepAlive { Nonce = 7 } });
        channel.Send(Reply(51, 64));
        var completing = Task.Run(channel.CompleteAsync);

        var replies = await ReadAllAsync(pipe.Reader);
        await completing.WaitAsync(Bound);
        Assert.Equal(52, replies.Count);
        Assert.Equal(1, replies[0].Error.RequestId);
        Assert.Equal(DataReply.KindOneofCase.KeepAlive, replies[1].KindCase);
        Assert.Equal(7, replies[1].KeepAlive.Nonce);
        Assert.Equal(Enumerable.Range(2, 50).Select(i => (long)i), replies.Skip(2).Select(r => r.Error.RequestId));
    }

    [Fact]
    public async Task A_keep_alive_answer_on_an_idle_connection_goes_out_at_once()
    {
        var pipe = new Pipe();
        var channel = new FramedReplyChannel(pipe.Writer);
        channel.SendAhead(new DataReply { KeepAlive = new KeepAlive { Nonce = 3 } });

        using var timeout = new CancellationTokenSource(Bound);
        var result = await pipe.Reader.ReadAsync(timeout.Token);
        var buffer = result.Buffer;
        Assert.True(RawFraming.TryReadFrame(ref buffer, 1 << 20, out var frame));
        Assert.Equal(3, DataReply.Parser.ParseFrom(frame).KeepAlive.Nonce);
        pipe.Reader.AdvanceTo(buffer.Start);
        await channel.CompleteAsync().WaitAsync(Bound);
    }

    private static DataReply Reply(long requestId, int padding) =>
        new() { Error = new ErrorReply { RequestId = requestId, Message = new string('s', padding) } };

    /// <summary>Looks at what the pipe holds without consuming it: true once the first reply is written.</summary>
    private static bool Peek(PipeReader reader, ReadResult result)
    {
        var written = result.Buffer.Length > 0;
        reader.AdvanceTo(result.Buffer.Start);
        return written;
    }

    private static async Task<List<DataReply>> ReadAllAsync(PipeReader reader)
    {
        using var timeout = new CancellationTokenSource(Bound);
        var replies = new List<DataReply>();
        while (true)
        {
            var result = await reader.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            while (RawFraming.TryReadFrame(ref buffer, 1 << 20, out var frame))
            {
                replies.Add(DataReply.Parser.ParseFrom(frame));
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return replies;
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The first reply was never written.");
            await Task.Delay(10);
        }
    }
}
