using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Streams.Common.Server.Framing;
using Streams.Contracts.SegmentStore;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Framing;

/// <summary>
/// What a queued reply holds of its connection's budget: a message sent with a reservation holds that reservation
/// (not its size on top), one sent without holds its size and the queue overhead, and either is given back once its
/// frame is flushed to the transport.
/// </summary>
public sealed class FramedReplyChannelTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_reserved_message_holds_its_reservation_until_flushed_and_is_not_counted_again()
    {
        // A transport that takes nothing until the test reads: every flush waits for the reader.
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 2, resumeWriterThreshold: 1, useSynchronizationContext: false));
        var budget = new ReplyBudget(1 << 20);
        var channel = new FramedReplyChannel(pipe.Writer, budget);
        var reply = new DataReply { KeepAlive = new KeepAlive { Nonce = 7 } };

        Assert.True(budget.TryAcquire(1_000));
        channel.Send(reply, reserved: 1_000);
        await Task.Delay(100, Token);
        Assert.Equal(1_000, budget.Held);

        Assert.Equal(7, (await ReadReplyAsync(pipe.Reader)).KeepAlive.Nonce);
        await Waiting.UntilAsync(() => budget.Held == 0, "the flushed reply gave its reservation back", Bound, cancellationToken: Token);

        channel.Send(reply);
        await Task.Delay(100, Token);
        Assert.Equal(reply.CalculateSize() + ReplyBudget.ReplyOverhead, budget.Held);
        Assert.Equal(7, (await ReadReplyAsync(pipe.Reader)).KeepAlive.Nonce);
        await Waiting.UntilAsync(() => budget.Held == 0, "the flushed reply gave its size back", Bound, cancellationToken: Token);

        await Task.WhenAll(channel.CompleteAsync(), DrainAsync(pipe.Reader)).WaitAsync(Bound, Token);
    }

    [Fact]
    public void A_counted_reply_holds_its_encoded_size_and_the_queue_overhead_until_released()
    {
        var budget = new ReplyBudget(100);
        var cost = budget.AddReply(500);

        Assert.Equal(500 + ReplyBudget.ReplyOverhead, cost);
        Assert.Equal(cost, budget.Held);
        Assert.False(budget.TryAcquire(1), "A budget spent by counted replies took more.");
        budget.Release(cost);
        Assert.Equal(0, budget.Held);
        Assert.True(budget.TryAcquire(1));
    }

    private static async Task<DataReply> ReadReplyAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync(Token).AsTask().WaitAsync(Bound, Token);
            var buffer = result.Buffer;
            if (buffer.Length >= 4)
            {
                var length = (int)BinaryPrimitives.ReadUInt32BigEndian(buffer.Slice(0, 4).ToArray());
                if (buffer.Length >= 4 + length)
                {
                    var reply = DataReply.Parser.ParseFrom(buffer.Slice(4, length));
                    reader.AdvanceTo(buffer.GetPosition(4 + length));
                    return reply;
                }
            }

            Assert.False(result.IsCompleted, "The channel ended before a whole reply was written.");
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static async Task DrainAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync(Token);
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }
}
