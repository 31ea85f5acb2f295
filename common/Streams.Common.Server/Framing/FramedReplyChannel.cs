using System.IO.Pipelines;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.AspNetCore.Connections;
using Streams.Common.Wire;

namespace Streams.Common.Server.Framing;

/// <summary>
/// The sending half of a raw framed connection: replies from any thread are queued and one loop writes them as
/// length-prefixed frames, flushing when the queue runs dry (or every 256 KiB), so a burst of replies costs one
/// system call. Replies still go out while the server stops; only a closed connection stops the sender, and whatever
/// was queued for it is released.
/// <para>
/// Memory. With a <see cref="ReplyBudget"/>, every queued reply is counted against it until its bytes are flushed
/// to the transport (as what its caller reserved for it, or a message sent without a reservation as its size), so a peer that stops reading
/// holds at most the budget: the protocol reserves before it produces a large reply, and the receive loop waits for
/// room before it takes the next request.
/// </para>
/// <para>
/// Keep-alives. A keep-alive answer (<see cref="SendAhead"/>) goes out before the replies still queued, so a client
/// probing a busy connection (replies backed up behind slow appends or large reads) hears from the server at once and
/// does not take it for frozen. Ordinary replies keep their order among themselves; an answer sent ahead is only ever
/// put between two of them, never into one.
/// </para>
/// </summary>
public sealed class FramedReplyChannel
{
    private const int FlushThreshold = 256 * 1024;

    /// <summary>Answers waiting to go out ahead of the queue; more than a few means the client floods keep-alives.</summary>
    private const int AheadCapacity = 4;

    /// <summary>The queue entry that wakes the sender for an answer sent ahead; it writes nothing itself.</summary>
    private static readonly Reply Wake = new(null, null, 0, 0);

    private readonly Channel<Reply> _queue =
        Channel.CreateUnbounded<Reply>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>
    /// Answers that jump the queue. Bounded: a client sends one keep-alive per interval, and one that floods them gets
    /// only the latest few answered ahead (the oldest are dropped; an answer's nonce tells the client which one it got).
    /// </summary>
    private readonly Channel<IMessage> _ahead = Channel.CreateBounded<IMessage>(
        new BoundedChannelOptions(AheadCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropOldest });

    private readonly ReplyBudget? _budget;
    private readonly Task _sender;

    public FramedReplyChannel(PipeWriter output, ReplyBudget? budget = null)
    {
        _budget = budget;
        _sender = SendAsync(output);
    }

    /// <summary>The bytes this connection may hold in unsent replies, or null when they are not bounded.</summary>
    public ReplyBudget? Budget => _budget;

    /// <summary>Queues a message; it counts against the budget (possibly over it) until it is flushed.</summary>
    public void Send(IMessage message)
    {
        // Sized once, here: the sender writes the prefix from it rather than sizing the message again.
        var size = message.CalculateSize();
        var cost = _budget?.AddReply(size) ?? 0;
        if (!_queue.Writer.TryWrite(new Reply(message, null, cost, size)))
        {
            _budget?.Release(cost);
        }
    }

    /// <summary>
    /// Queues a message for which the caller took <paramref name="reserved"/> bytes from <see cref="Budget"/> (before
    /// it did the work the message answers): they are given back once the message's frame is flushed, or when the
    /// connection closes first. The message is not counted again.
    /// </summary>
    public void Send(IMessage message, long reserved)
    {
        if (!_queue.Writer.TryWrite(new Reply(message, null, reserved, message.CalculateSize())))
        {
            _budget?.Release(reserved);
        }
    }

    /// <summary>
    /// Sends a small message (a keep-alive answer) ahead of every reply still queued: it is written before the next
    /// queued reply. It does not count against the budget (the channel holds at most a few).
    /// </summary>
    public void SendAhead(IMessage message)
    {
        if (_ahead.Writer.TryWrite(message))
        {
            // The sender may be waiting for the queue: wake it. It takes the answer at its next reply either way.
            _queue.Writer.TryWrite(Wake);
        }
    }

    /// <summary>Queues a body without counting it against the budget.</summary>
    public void Send(IFrameBody body) => Send(body, 0);

    /// <summary>
    /// Queues a body for which the caller took <paramref name="reserved"/> bytes from <see cref="Budget"/>: they are
    /// given back once the body's frame is flushed, or when the connection closes first. The body is disposed as soon
    /// as it is written (or dropped).
    /// </summary>
    public void Send(IFrameBody body, long reserved)
    {
        if (!_queue.Writer.TryWrite(new Reply(null, body, reserved, body.Size)))
        {
            Drop(new Reply(null, body, reserved, body.Size));
        }
    }

    /// <summary>Stops accepting replies and waits until the queued ones are written.</summary>
    public Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        return _sender;
    }

    private async Task SendAsync(PipeWriter output)
    {
        var reader = _queue.Reader;
        // Bytes written into the pipe whose budget is given back at the next flush.
        long unflushed = 0;
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None))
            {
                while (reader.TryRead(out var item))
                {
                    WriteAhead(output);
                    if (item.Message is null && item.Body is null)
                    {
                        continue; // a wake-up
                    }

                    RawFraming.WriteHeader(output, item.Size);
                    if (item.Body is { } body)
                    {
                        using (body)
                        {
                            body.Write(output);
                        }
                    }
                    else
                    {
                        item.Message!.WriteTo(output);
                    }

                    unflushed += item.Cost;
                    if (output.UnflushedBytes >= FlushThreshold)
                    {
                        await FlushAsync(output);
                        _budget?.Release(unflushed);
                        unflushed = 0;
                    }
                }

                await FlushAsync(output);
                _budget?.Release(unflushed);
                unflushed = 0;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException or InvalidOperationException)
        {
            // The peer went away: refuse further replies, then release what was queued for it.
            _queue.Writer.TryComplete();
            _ahead.Writer.TryComplete();
            _budget?.Release(unflushed);
            while (reader.TryRead(out var item))
            {
                Drop(item);
            }
        }
        finally
        {
            await output.CompleteAsync();
        }
    }

    /// <summary>Writes the answers sent ahead, if any, into the pipe before the next queued reply.</summary>
    private void WriteAhead(PipeWriter output)
    {
        while (_ahead.Reader.TryRead(out var message))
        {
            RawFraming.WriteHeader(output, message.CalculateSize());
            message.WriteTo(output);
        }
    }

    /// <summary>Flushes; a transport that stopped taking bytes (closed or aborted) counts as the peer gone.</summary>
    private static async ValueTask FlushAsync(PipeWriter output)
    {
        var result = await output.FlushAsync();
        if (result.IsCompleted || result.IsCanceled)
        {
            throw new IOException("The connection's transport no longer takes replies.");
        }
    }

    private void Drop(Reply item)
    {
        item.Body?.Dispose();
        _budget?.Release(item.Cost);
    }

    /// <summary>A queued reply: a message or a body, what it holds of the budget, and its frame's body size.</summary>
    private readonly record struct Reply(IMessage? Message, IFrameBody? Body, long Cost, int Size);
}
