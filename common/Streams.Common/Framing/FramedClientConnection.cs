using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Common.Wire;

namespace Streams.Common.Framing;

/// <summary>
/// The client end of a raw framed link (docs/wire-protocol.md), shared by the SDK's segment-store connection and the
/// ledger client's bookie connection: a TCP socket with pipelines, length-prefixed frames both ways, a hello
/// exchange, requests multiplexed by id, keep-alive probes and request timeouts. What the frames mean is the
/// <see cref="IFramedClientProtocol"/>'s business.
/// <para>
/// Invariants. Frames never interleave: one writer at a time (a semaphore) writes whole frames into the pipe, from
/// the callers' buffers, and flushes them. A request is registered by id before its frame is written, so its reply
/// always finds it. Reply frames are read without copying (<see cref="FramedMessageReader"/>) and are valid only while
/// the protocol handles them. Closing happens once: the first reason wins, every pending request fails with the
/// protocol's error for it, the protocol's reconnect hook runs, and the socket is disposed, which ends the receive
/// loop. A closed connection is never reused.
/// </para>
/// <para>
/// Failure strategy. A frozen or cut-off peer keeps its TCP connection open, so only silence tells that it is gone:
/// a connection quiet for the keep-alive interval sends the protocol's probe, and one that receives nothing for the
/// keep-alive timeout closes, checked at a quarter of the interval. Pending requests and writes stuck in a full
/// socket buffer are no life sign, and the probe is sent aside, so a peer that stopped reading cannot hold up the
/// check. With a request timeout, a request left unanswered that long closes the connection as
/// well: a peer that does not answer is as good as down, and every request should learn it at once.
/// </para>
/// </summary>
public sealed partial class FramedClientConnection : IAsyncDisposable
{
    /// <summary>Receive buffer: 64 KiB blocks, read at least 16 KiB at a time, so a burst of replies costs one read.</summary>
    private const int ReceiveBufferSize = 64 * 1024;

    private const int MinimumReadSize = 16 * 1024;

    /// <summary>Send buffer: 64 KiB segments, so a 64 KiB block goes into the socket in one piece.</summary>
    private const int SendBufferSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IFramedClientProtocol _protocol;
    private readonly FramedConnectionOptions _options;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<object>> _pending = new();
    private readonly TaskCompletionSource<object> _hello = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _closing = new();
    private long _lastReceived = Environment.TickCount64;
    private volatile Exception? _closedReason;
    private Task _receiveLoop = Task.CompletedTask;
    private Task _keepAliveLoop = Task.CompletedTask;

    private FramedClientConnection(Socket socket, IFramedClientProtocol protocol, FramedConnectionOptions options)
    {
        _socket = socket;
        _protocol = protocol;
        _options = options;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: ReceiveBufferSize, minimumReadSize: MinimumReadSize));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: SendBufferSize));
    }

    /// <summary>Whether the connection is closed; it stays closed.</summary>
    public bool IsClosed => _closedReason is not null;

    /// <summary>Why the connection closed, or null while it is open.</summary>
    public Exception? ClosedReason => _closedReason;

    /// <summary>
    /// Connects, sends <paramref name="hello"/> and waits for the hello reply, all within the connect timeout, then
    /// starts keep-alives. Throws the protocol's <see cref="FramedFailure.ConnectFailed"/> error (or its hello check's
    /// error); <see cref="OperationCanceledException"/> only when <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public static async Task<FramedClientConnection> ConnectAsync(
        string host, int port, IMessage hello, IFramedClientProtocol protocol, FramedConnectionOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connect.CancelAfter(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, connect.Token);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw protocol.Failure(FramedFailure.ConnectFailed, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new FramedClientConnection(socket, protocol, options);
        connection._receiveLoop = Task.Run(connection.ReceiveLoopAsync, CancellationToken.None);
        try
        {
            object reply;
            try
            {
                await connection.WriteAsync(hello, connect.Token);
                reply = await connection._hello.Task.WaitAsync(connect.Token);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                throw protocol.Failure(FramedFailure.ConnectFailed, e is OperationCanceledException
                    ? new TimeoutException($"No hello reply within {options.ConnectTimeout.TotalSeconds:F0} s.", e)
                    : connection._closedReason ?? e);
            }

            protocol.CheckHello(reply);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        if (options.KeepAlives)
        {
            connection._keepAliveLoop = Task.Run(connection.KeepAliveLoopAsync, CancellationToken.None);
        }

        return connection;
    }

    /// <summary>Writes one message as a frame, without waiting for any reply.</summary>
    public ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken = default) =>
        WriteAsync(message, static (output, in m) => RawFraming.WriteMessage(output, m), cancellationToken);

    /// <summary>
    /// Writes one frame with <paramref name="write"/> (from the caller's buffers, straight into the socket's pipe)
    /// and flushes it, without waiting for any reply. Frames written by other callers during a flush go out together
    /// with the next one (<see cref="FramedClientConnection"/>, Sending). Throws the protocol's
    /// <see cref="FramedFailure.Closed"/> or <see cref="FramedFailure.SendFailed"/> error.
    /// </summary>
    public ValueTask WriteAsync<TState>(TState state, FrameWriter<TState> write, CancellationToken cancellationToken = default) =>
        SendAsync(state, write, cancellationToken);

    /// <summary>Sends a request message and waits for the reply matched to <paramref name="requestId"/>.</summary>
    public Task<object> RequestAsync(long requestId, IMessage request, CancellationToken cancellationToken = default) =>
        RequestAsync(requestId, request, static (output, in m) => RawFraming.WriteMessage(output, m), cancellationToken);

    /// <summary>
    /// Sends a request frame written by <paramref name="write"/> and waits for the reply the protocol completes for
    /// <paramref name="requestId"/>. Throws what the protocol fails it with, its <see cref="FramedFailure.TimedOut"/>
    /// error after the request timeout (the connection then closes), or <see cref="OperationCanceledException"/>.
    /// A reply that arrives after the caller gave up is disposed if it is disposable.
    /// </summary>
    public async Task<object> RequestAsync<TState>(long requestId, TState state, FrameWriter<TState> write, CancellationToken cancellationToken = default)
    {
        var pending = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[requestId] = pending;
        var delivered = false;
        try
        {
            await WriteAsync(state, write, cancellationToken);
            var reply = await pending.Task.WaitAsync(_options.RequestTimeout, cancellationToken);
            delivered = true;
            return reply;
        }
        catch (TimeoutException e)
        {
            Close(e);
            throw _protocol.Failure(FramedFailure.TimedOut, e);
        }
        finally
        {
            _pending.TryRemove(requestId, out _);
            if (!delivered)
            {
                _ = pending.Task.ContinueWith(
                    static t => (t.Result as IDisposable)?.Dispose(),
                    CancellationToken.None,
                    TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }
    }

    /// <summary>Completes the pending request <paramref name="requestId"/>; a reply nobody waits for is disposed.</summary>
    public void Complete(long requestId, object reply)
    {
        if (_pending.TryRemove(requestId, out var pending) && pending.TrySetResult(reply))
        {
            return;
        }

        (reply as IDisposable)?.Dispose();
    }

    /// <summary>Fails the pending request <paramref name="requestId"/> (a request-level error; the connection stays open).</summary>
    public void Fail(long requestId, Exception error)
    {
        if (_pending.TryRemove(requestId, out var pending))
        {
            pending.TrySetException(error);
        }
    }

    /// <summary>Hands over the hello reply; later ones (keep-alive answers of protocols that probe with hello) are ignored.</summary>
    public void OnHello(object reply) => _hello.TrySetResult(reply);

    /// <summary>
    /// Closes the connection with <paramref name="reason"/>: fails every pending request, runs the protocol's
    /// reconnect hook and disposes the socket. Idempotent: only the first reason counts.
    /// </summary>
    public void Close(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _closedReason, reason, null) is not null)
        {
            return;
        }

        _closing.Cancel();
        _hello.TrySetException(reason);
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var pending))
            {
                pending.TrySetException(_protocol.Failure(FramedFailure.Lost, reason));
            }
        }

        _protocol.OnClosed(reason);

        // Unblocks the receive loop.
        _socket.Dispose();
    }

    /// <summary>Closes the connection, waits for its loops to end and releases its buffers.</summary>
    public async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(FramedClientConnection)));
        await _receiveLoop;
        await _keepAliveLoop;
        _closing.Dispose();

        await _writeLock.WaitAsync();
        try
        {
            await _output.CompleteAsync();
        }
        catch (Exception e) when (e is ObjectDisposedException or IOException or SocketException)
        {
            // Closing disposed the socket already: whatever was still buffered has nowhere to go.
        }
        finally
        {
            _writeLock.Release();
        }

        await _stream.DisposeAsync();
    }

    private async Task ReceiveLoopAsync()
    {
        var reader = new FramedMessageReader(_input, _options.MaxFrameSize);
        try
        {
            while (await reader.MoveNextAsync())
            {
                Volatile.Write(ref _lastReceived, Environment.TickCount64);
                _protocol.OnFrame(this, reader.Current);
            }

            Close(new IOException($"The {_options.PeerName} closed the connection."));
        }
        catch (Exception e)
        {
            Close(e);
        }
        finally
        {
            reader.Release();
            await _input.CompleteAsync();
        }
    }

    private async Task KeepAliveLoopAsync()
    {
        // Checked four times per interval (at least every 50 ms), so silence is noticed within a quarter interval of
        // the timeout, not a whole interval after it.
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(50).Ticks, Math.Min(_options.KeepAliveInterval.Ticks, _options.KeepAliveTimeout.Ticks) / 4));
        using var timer = new PeriodicTimer(tick);
        long nonce = 0;
        var probing = Task.CompletedTask;
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token))
            {
                // Only what the peer sends is a life sign: requests waiting for it, or a write stuck in a full socket
                // buffer, are not.
                var quiet = TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastReceived));
                if (quiet >= _options.KeepAliveTimeout)
                {
                    Close(_protocol.Failure(FramedFailure.Silent,
                        new TimeoutException($"The {_options.PeerName} answered nothing for {quiet.TotalSeconds:F1} s (keep-alive timeout).")));
                    return;
                }

                // The probe never holds up the check: a peer that stopped reading blocks writes, and this loop is
                // what must notice it.
                if (quiet >= _options.KeepAliveInterval && probing.IsCompleted)
                {
                    probing = ProbeAsync(++nonce);
                }
            }
        }
        catch (Exception e) when (IsClosed || e is OperationCanceledException)
        {
            // Closed meanwhile.
        }
    }

    private async Task ProbeAsync(long nonce)
    {
        try
        {
            await WriteAsync(_protocol.CreateKeepAlive(nonce), _closing.Token);
        }
        catch (Exception) when (IsClosed || _closing.IsCancellationRequested)
        {
            // Closed meanwhile; the failure was reported to whoever was waiting.
        }
    }
}
