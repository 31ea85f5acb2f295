using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>
/// A connection on the raw framed carrier (docs/wire-protocol.md): a TCP socket with pipelines, 4-byte length
/// prefixes and the segment store's DataRequest/DataReply messages. Block data is written from the writer's
/// buffers straight into the socket's pipe.
/// </summary>
internal sealed class RawSegmentStoreConnection : SegmentStoreConnection
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<object>> _requests = new();
    private readonly TaskCompletionSource<HelloReply> _hello = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _closing = new();
    private readonly KeepAliveSettings _keepAlive;
    private long _lastReceived = Environment.TickCount64;
    private Task? _receiveLoop;
    private Task? _keepAliveLoop;

    private RawSegmentStoreConnection(Socket socket, KeepAliveSettings keepAlive)
    {
        _socket = socket;
        _keepAlive = keepAlive;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
    }

    public static async Task<RawSegmentStoreConnection> ConnectAsync(string host, int port, TimeSpan timeout, KeepAliveSettings keepAlive)
    {
        using var cts = new CancellationTokenSource(timeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cts.Token);
        }
        catch (Exception e)
        {
            socket.Dispose();
            throw new RpcException(new Status(StatusCode.Unavailable, $"Cannot connect to the segment store at {host}:{port}: {e.Message}", e));
        }

        var connection = new RawSegmentStoreConnection(socket, keepAlive);
        connection._receiveLoop = Task.Run(connection.ReceiveLoopAsync);
        connection._keepAliveLoop = Task.Run(connection.KeepAliveLoopAsync);
        try
        {
            await connection.WriteAsync(new DataRequest { Hello = new Hello { ProtocolVersion = RawFraming.ProtocolVersion, Client = "streams-dotnet" } }, cts.Token);
            var hello = await connection._hello.Task.WaitAsync(cts.Token);
            if (hello.ProtocolVersion != RawFraming.ProtocolVersion)
            {
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The segment store speaks protocol {hello.ProtocolVersion}, not {RawFraming.ProtocolVersion}."));
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return connection;
    }

    public override ValueTask SendSetupAsync(long requestId, Guid writerId, string segment, CancellationToken cancellationToken) =>
        WriteAsync(new DataRequest
        {
            Setup = new SetupAppend { RequestId = requestId, WriterId = ByteString.CopyFrom(writerId.ToByteArray()), Segment = segment },
        }, cancellationToken);

    public override async ValueTask SendBlockAsync(AppendBlockHeader header, ReadOnlySequence<byte> data, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            ThrowIfClosed();
            RawFraming.WriteHeader(_output, AppendBlockCodec.EnvelopeSize(header, data.Length));
            AppendBlockCodec.WriteEnvelope(_output, header, data);
            await FlushAsync(cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override async Task<SegmentReadReply> ReadAsync(string segment, long offset, int maxBytes, int waitMillis, CancellationToken cancellationToken)
    {
        var id = NextRequestId();
        var reply = await RequestAsync(id, new DataRequest
        {
            Read = new ReadSegmentRequest { RequestId = id, Segment = segment, Offset = offset, MaxBytes = maxBytes, WaitMillis = waitMillis },
        }, cancellationToken);
        return (SegmentReadReply)reply;
    }

    public override async Task<SegmentInfo> GetInfoAsync(string segment, CancellationToken cancellationToken)
    {
        var id = NextRequestId();
        var reply = await RequestAsync(id, new DataRequest { Info = new SegmentRequest { RequestId = id, Segment = segment } }, cancellationToken);
        return (SegmentInfo)reply;
    }

    public override async ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(nameof(RawSegmentStoreConnection)));
        if (_receiveLoop is not null)
        {
            await _receiveLoop;
        }

        if (_keepAliveLoop is not null)
        {
            await _keepAliveLoop;
        }

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

    protected override void OnClosed(Exception reason)
    {
        _closing.Cancel();
        _hello.TrySetException(reason);
        foreach (var id in _requests.Keys)
        {
            if (_requests.TryRemove(id, out var pending))
            {
                pending.TrySetException(ClosedError);
            }
        }

        // Unblocks the receive loop.
        _socket.Dispose();
    }

    private async Task<object> RequestAsync(long id, DataRequest request, CancellationToken cancellationToken)
    {
        var pending = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        _requests[id] = pending;
        try
        {
            await WriteAsync(request, cancellationToken);
            return await pending.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            if (_requests.TryRemove(id, out _) && pending.Task.IsCompletedSuccessfully && pending.Task.Result is IDisposable late)
            {
                // Answered after the caller gave up.
                late.Dispose();
            }
        }
    }

    private async ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            ThrowIfClosed();
            RawFraming.WriteMessage(_output, message);
            await FlushAsync(cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _output.FlushAsync(cancellationToken);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Close(e);
            throw ClosedError;
        }
    }

    private void ThrowIfClosed()
    {
        if (IsClosed)
        {
            throw ClosedError;
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var reader = new FramedMessageReader(_input, RawFraming.DefaultMaxFrameSize);
        try
        {
            while (await reader.MoveNextAsync())
            {
                Volatile.Write(ref _lastReceived, Environment.TickCount64);
                Handle(reader.Current);
            }

            Close(new IOException("The segment store closed the connection."));
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

    /// <summary>
    /// Probes a quiet connection and drops one that stays silent for the keep-alive timeout: a frozen or cut-off
    /// segment store keeps its TCP connections open, so only silence tells that it is gone.
    /// </summary>
    private async Task KeepAliveLoopAsync()
    {
        var tick = TimeSpan.FromTicks(Math.Min(_keepAlive.Interval.Ticks, _keepAlive.Timeout.Ticks / 3));
        using var timer = new PeriodicTimer(tick);
        long nonce = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token))
            {
                var quiet = TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastReceived));
                if (quiet >= _keepAlive.Timeout)
                {
                    Close(new RpcException(new Status(StatusCode.Unavailable,
                        $"The segment store answered nothing for {quiet.TotalSeconds:F0} s (keep-alive timeout); reconnecting.")));
                    return;
                }

                if (quiet >= _keepAlive.Interval)
                {
                    await WriteAsync(new DataRequest { KeepAlive = new KeepAlive { Nonce = ++nonce } }, _closing.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Closed meanwhile.
        }
    }

    private void Handle(in ReadOnlySequence<byte> frame)
    {
        if (ReadReplyCodec.TryReadEnvelope(frame, out var header, out var data))
        {
            Complete(header.RequestId, SegmentReadReply.Copy(header, data));
            return;
        }

        // Append replies (fields 1-3) are by far the most common: parse them as AppendReply directly.
        var field = frame.FirstSpan.Length > 0 ? frame.FirstSpan[0] >> 3 : 0;
        if (field is >= 1 and <= 3)
        {
            Dispatch(AppendReply.Parser.ParseFrom(frame));
            return;
        }

        var reply = DataReply.Parser.ParseFrom(frame);
        switch (reply.KindCase)
        {
            case DataReply.KindOneofCase.Read:
                Complete(reply.Read.RequestId, new SegmentReadReply(
                    new ReadReplyHeader(reply.Read.RequestId, reply.Read.Status, reply.Read.Offset, reply.Read.SegmentLength, reply.Read.StartOffset, reply.Read.Sealed),
                    null, reply.Read.Data.Memory));
                break;
            case DataReply.KindOneofCase.Info:
                Complete(reply.Info.RequestId, reply.Info.Info);
                break;
            case DataReply.KindOneofCase.Hello:
                _hello.TrySetResult(reply.Hello);
                break;
            case DataReply.KindOneofCase.KeepAlive:
                break;
            case DataReply.KindOneofCase.Error:
                var error = new RpcException(new Status((StatusCode)reply.Error.Code, reply.Error.Message));
                if (reply.Error.RequestId == 0)
                {
                    Close(error);
                }
                else if (_requests.TryRemove(reply.Error.RequestId, out var pending))
                {
                    pending.TrySetException(error);
                }

                break;
        }
    }

    private void Complete(long requestId, object reply)
    {
        if (_requests.TryRemove(requestId, out var pending) && pending.TrySetResult(reply))
        {
            return;
        }

        (reply as IDisposable)?.Dispose();
    }
}
