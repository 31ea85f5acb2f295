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
/// </summary>
public sealed class FramedReplyChannel
{
    private const int FlushThreshold = 256 * 1024;

    private readonly Channel<(IMessage? Message, IFrameBody? Body)> _queue =
        Channel.CreateUnbounded<(IMessage?, IFrameBody?)>(new UnboundedChannelOptions { SingleReader = true });

    private readonly Task _sender;

    public FramedReplyChannel(PipeWriter output)
    {
        _sender = SendAsync(output);
    }

    public void Send(IMessage message) => _queue.Writer.TryWrite((message, null));

    public void Send(IFrameBody body)
    {
        if (!_queue.Writer.TryWrite((null, body)))
        {
            body.Dispose();
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
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None))
            {
                while (reader.TryRead(out var item))
                {
                    if (item.Body is { } body)
                    {
                        using (body)
                        {
                            RawFraming.WriteHeader(output, body.Size);
                            body.Write(output);
                        }
                    }
                    else
                    {
                        RawFraming.WriteMessage(output, item.Message!);
                    }

                    if (output.UnflushedBytes >= FlushThreshold)
                    {
                        await output.FlushAsync();
                    }
                }

                await output.FlushAsync();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException or InvalidOperationException)
        {
            // The peer went away: release what was queued for it.
            while (reader.TryRead(out var item))
            {
                item.Body?.Dispose();
            }
        }
        finally
        {
            await output.CompleteAsync();
        }
    }
}
