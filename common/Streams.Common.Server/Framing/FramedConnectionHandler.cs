using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Hosting;
using Streams.Common.Wire;

namespace Streams.Common.Server.Framing;

/// <summary>
/// The server end of a raw framed link (docs/wire-protocol.md), shared by the segment store's data handler and the
/// bookie's handler: one loop per Kestrel connection that reads length-prefixed frames and hands each to the
/// protocol, with replies queued on a <see cref="FramedReplyChannel"/>.
/// <para>
/// Invariants. Frames are handled one at a time, in arrival order: the next frame is read only once
/// <see cref="OnFrameAsync"/> has returned, so a frame (a slice of Kestrel's pooled receive buffers, never copied
/// here) stays valid until then, and whatever must outlive it is copied by the protocol. Work a frame starts in the
/// background answers through the reply channel, which outlives the loop until everything queued is written.
/// </para>
/// <para>
/// Failure strategy. A malformed or oversized frame, or an <see cref="RpcException"/> from the protocol, is answered
/// with the protocol's connection-level error (request id 0, a gRPC status code and a message) and the connection
/// closes. The server stopping ends every connection, optionally with an UNAVAILABLE error that tells the client to
/// reconnect elsewhere; a client going away just ends the loop. Anything else thrown is a bug: the client gets
/// INTERNAL with a correlation id and a generic message, the server log the exception under that id.
/// </para>
/// <para>
/// Memory. With a reply budget (<see cref="ReplyBudgetBytes"/>), the loop reads the next frame only while the
/// connection's unsent replies fit in it, so a client that stops reading its replies also stops being served, and
/// holds at most the budget. A connection that ends with replies still unsent gets <see cref="DrainTimeout"/> to take
/// them, then is aborted.
/// </para>
/// </summary>
/// <typeparam name="TSession">What the protocol keeps per connection.</typeparam>
public abstract class FramedConnectionHandler<TSession> : ConnectionHandler
{
    /// <summary>How long a connection that ended may take to receive the replies still queued for it.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly string _name;

    /// <param name="lifetime">Its stopping token ends every connection.</param>
    /// <param name="logger">Where ended connections are logged (at debug level).</param>
    /// <param name="name">What the connections are called in the log ("Data", "Bookie").</param>
    protected FramedConnectionHandler(IHostApplicationLifetime lifetime, ILogger logger, string name)
    {
        _lifetime = lifetime;
        _logger = logger;
        _name = name;
    }

    /// <summary>Largest frame accepted; a larger one is refused with RESOURCE_EXHAUSTED as soon as its prefix arrives.</summary>
    protected virtual int MaxFrameSize => RawFraming.DefaultMaxFrameSize;

    /// <summary>
    /// The message sent to clients when the server stops under them, or null to just close (the default).
    /// </summary>
    protected virtual string? ShutdownMessage => null;

    /// <summary>
    /// The bytes of unsent replies a connection may hold (<see cref="ReplyBudget"/>), or null for no bound (the
    /// default).
    /// </summary>
    protected virtual long? ReplyBudgetBytes => null;

    /// <summary>Told every change of a connection's held reply bytes (for a metric), or null.</summary>
    protected virtual Action<long>? ReplyBytesChanged => null;

    /// <inheritdoc />
    public sealed override async Task OnConnectedAsync(ConnectionContext connection)
    {
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed, _lifetime.ApplicationStopping);
        var aborted = lifetime.Token;
        var budget = ReplyBudgetBytes is { } limit ? new ReplyBudget(limit, ReplyBytesChanged) : null;
        var replies = new FramedReplyChannel(connection.Transport.Output, budget);
        var session = OpenSession(replies);
        var reader = new FramedMessageReader(connection.Transport.Input, MaxFrameSize);
        try
        {
            while (true)
            {
                if (budget is not null)
                {
                    await budget.WaitForRoomAsync(aborted);
                }

                if (!await reader.MoveNextAsync(aborted))
                {
                    break;
                }

                var handling = OnFrameAsync(session, reader.Current, aborted);
                if (handling.IsCompletedSuccessfully)
                {
                    // Consumed, so a pooled task goes back to its pool.
                    handling.GetAwaiter().GetResult();
                }
                else
                {
                    await WhileHandlingAsync(handling, replies, aborted);
                }
            }

            await OnPeerFinishedAsync(session, aborted);
        }
        catch (RpcException e)
        {
            replies.Send(ConnectionError(e.StatusCode, e.Status.Detail));
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            replies.Send(ConnectionError(StatusCode.InvalidArgument, $"Malformed frame: {e.Message}"));
        }
        catch (OperationCanceledException) when (ShutdownMessage is { } message
            && _lifetime.ApplicationStopping.IsCancellationRequested && !connection.ConnectionClosed.IsCancellationRequested)
        {
            replies.Send(ConnectionError(StatusCode.Unavailable, message));
        }
        catch (Exception e) when (e is OperationCanceledException or ConnectionResetException or IOException or TimeoutException)
        {
            _logger.LogDebug("{Name} connection {Connection} ended: {Reason}", _name, connection.ConnectionId, e.Message);
        }
        catch (Exception e)
        {
            replies.Send(ConnectionError(StatusCode.Internal, InternalErrors.Report(_logger, e, $"{_name} connection {connection.ConnectionId}")));
        }
        finally
        {
            try
            {
                await replies.CompleteAsync().WaitAsync(DrainTimeout);
            }
            catch (TimeoutException)
            {
                // A client that does not take its replies: cut it off, which releases what was queued for it.
                connection.Abort(new ConnectionAbortedException("The client did not take its replies."));
                await replies.CompleteAsync();
            }

            reader.Release();
            await connection.Transport.Input.CompleteAsync();
            CloseSession(session);
        }
    }

    /// <summary>
    /// A message sent to the client, ahead of queued replies, every <see cref="HeartbeatInterval"/> while a frame's
    /// handling holds up the loop (back-pressure: the next frame, the client's keep-alive probe among them, is not read
    /// until then), so a client does not take a server that is making it wait for one that stopped. Null (the default)
    /// for none.
    /// </summary>
    protected virtual IMessage? Heartbeat => null;

    /// <summary>How often <see cref="Heartbeat"/> is sent while a frame's handling waits: well inside a client's keep-alive timeout.</summary>
    protected static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(500);

    private async ValueTask WhileHandlingAsync(ValueTask handling, FramedReplyChannel replies, CancellationToken aborted)
    {
        if (Heartbeat is not { } heartbeat)
        {
            await handling;
            return;
        }

        // A cancelled delay ends the wait too; the handling, which sees the same token, then ends by itself.
        var task = handling.AsTask();
        while (!task.IsCompleted && !aborted.IsCancellationRequested)
        {
            await Task.WhenAny(task, Task.Delay(HeartbeatInterval, aborted));
            if (!task.IsCompleted && !aborted.IsCancellationRequested)
            {
                replies.SendAhead(heartbeat);
            }
        }

        await task;
    }

    /// <summary>Creates the per-connection state; replies go through <paramref name="replies"/>.</summary>
    protected abstract TSession OpenSession(FramedReplyChannel replies);

    /// <summary>
    /// Handles one frame. <paramref name="frame"/> points into pooled receive buffers and is valid until the returned
    /// task completes. Throws <see cref="RpcException"/> or <see cref="InvalidDataException"/> to refuse the frame and
    /// close the connection.
    /// </summary>
    protected abstract ValueTask OnFrameAsync(TSession session, ReadOnlySequence<byte> frame, CancellationToken aborted);

    /// <summary>Called when the client finished sending (a clean end of stream); by default nothing is waited for.</summary>
    protected virtual ValueTask OnPeerFinishedAsync(TSession session, CancellationToken aborted) => ValueTask.CompletedTask;

    /// <summary>Releases the per-connection state, after every queued reply is written.</summary>
    protected virtual void CloseSession(TSession session)
    {
    }

    /// <summary>A connection-level error reply (request id 0) with a gRPC status code.</summary>
    protected abstract IMessage ConnectionError(StatusCode code, string message);
}
