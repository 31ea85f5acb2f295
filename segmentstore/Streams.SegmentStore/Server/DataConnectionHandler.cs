using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Framing;
using Streams.Common.Server.Hosting;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Server;

/// <summary>
/// The raw framed data carrier (docs/wire-protocol.md): length-prefixed DataRequest frames in, DataReply frames
/// out, on a plain TCP connection. Appends are processed in arrival order; reads run concurrently (bounded per
/// connection) and are answered as they finish. Block payloads are copied once, from Kestrel's receive buffers
/// into the container's frame; read data is copied once, from the cache into the send buffers.
/// A malformed frame is answered with an ErrorReply carrying a gRPC status code, then the connection closes.
/// <para>
/// Memory. Every connection has a reply budget (SegmentStore:ReplyBudgetPerConnection): a read answer holds its cost
/// against it until its frame is flushed to the socket, and the receive loop takes no new request while the budget is
/// spent, so a client that sends reads and never takes the answers holds at most the budget.
/// </para>
/// <para>
/// Closing. Reads run in the background and may finish after the connection's loop ended: the session is released by
/// whichever finishes last, the loop or the last read, so a late read never touches released state. A client that
/// finishes sending gets the answers to the reads it sent before (bounded by the drain timeout); reads still waiting
/// after that are cancelled.
/// </para>
/// </summary>
public sealed class DataConnectionHandler : FramedConnectionHandler<DataConnectionHandler.Session>
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private readonly SegmentRequests _requests;
    private readonly ILogger<DataConnectionHandler> _logger;

    public DataConnectionHandler(SegmentRequests requests, IHostApplicationLifetime lifetime, ILogger<DataConnectionHandler> logger)
        : base(lifetime, logger, "Data")
    {
        _requests = requests;
        _logger = logger;
    }

    /// <summary>Clients then reconnect elsewhere (the connection ends when the client goes away or the server stops).</summary>
    protected override string? ShutdownMessage => "The segment store is shutting down; reconnect.";

    /// <summary>An unasked keep-alive (nonce 0): an append waiting for capacity is not a server that stopped.</summary>
    protected override IMessage? Heartbeat { get; } = new DataReply { KeepAlive = new KeepAlive { Nonce = 0 } };

    protected override long? ReplyBudgetBytes => _requests.Store.Options.ReplyBudgetPerConnection.Bytes;

    protected override Action<long>? ReplyBytesChanged => static change => SegmentStoreMetrics.ReplyBytes.Add(change);

    protected override Session OpenSession(FramedReplyChannel replies) =>
        new(new AppendSession(_requests.Store, replies.Send), _requests.Store.Options.MaxReadsPerConnection, replies);

    protected override ValueTask OnFrameAsync(Session session, ReadOnlySequence<byte> frame, CancellationToken aborted) =>
        AppendBlockCodec.TryReadEnvelope(frame, out var header, out var data)
            ? session.Appends.OnBlockAsync(header, data, aborted)
            : OnRequestAsync(session, DataRequest.Parser.ParseFrom(frame), aborted);

    /// <summary>The client finished sending: answer what it sent before closing.</summary>
    protected override async ValueTask OnPeerFinishedAsync(Session session, CancellationToken aborted) =>
        await Task.WhenAll(session.Appends.DrainAsync(aborted), session.ReadsDrainedAsync(aborted)).WaitAsync(DrainTimeout, aborted);

    protected override void CloseSession(Session session) => session.Close();

    protected override IMessage ConnectionError(StatusCode code, string message) => Error(0, code, message);

    // Pooled: a read that waits for its slot must not cost an allocation per frame.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask OnRequestAsync(Session session, DataRequest request, CancellationToken aborted)
    {
        switch (request.KindCase)
        {
            case DataRequest.KindOneofCase.Setup:
                session.Appends.OnSetup(request.Setup);
                break;
            case DataRequest.KindOneofCase.Block:
                var block = request.Block;
                await session.Appends.OnBlockAsync(
                    new AppendBlockHeader(block.RequestId, block.LastEventNumber, block.EventCount, block.HasExpectedOffset ? block.ExpectedOffset : null, block.KeySample),
                    new ReadOnlySequence<byte>(block.Data.Memory),
                    aborted);
                break;
            case DataRequest.KindOneofCase.Read:
                await session.BeginReadAsync(aborted);
                _ = ReadAsync(request.Read, session);
                break;
            case DataRequest.KindOneofCase.Info:
                session.Replies.Send(Info(request.Info));
                break;
            case DataRequest.KindOneofCase.Hello:
                if (request.Hello.ProtocolVersion != RawFraming.ProtocolVersion)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Protocol version {request.Hello.ProtocolVersion} is not supported; this server speaks version {RawFraming.ProtocolVersion}."));
                }

                session.Replies.Send(new DataReply
                {
                    Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion, Server = "streams-segmentstore" },
                });
                break;
            case DataRequest.KindOneofCase.KeepAlive:
                session.Replies.SendAhead(new DataReply { KeepAlive = request.KeepAlive });
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "Empty or unknown DataRequest."));
        }
    }

    private DataReply Info(SegmentRequest request)
    {
        try
        {
            return new DataReply { Info = new SegmentInfoReply { RequestId = request.RequestId, Info = _requests.GetInfo(request) } };
        }
        catch (RpcException e)
        {
            return Error(request.RequestId, e.StatusCode, e.Status.Detail);
        }
    }

    private async Task ReadAsync(ReadSegmentRequest request, Session session)
    {
        var replies = session.Replies;
        try
        {
            var (result, cost) = await _requests.ReadAsync(request, replies.Budget!, session.Ending);
            replies.Send(new ReadReplyFrame(request.RequestId, result), cost);
        }
        catch (RpcException e)
        {
            replies.Send(Error(request.RequestId, e.StatusCode, e.Status.Detail));
        }
        catch (OperationCanceledException)
        {
            // The connection closed while the read waited.
        }
        catch (Exception e)
        {
            replies.Send(Error(request.RequestId, StatusCode.Internal, InternalErrors.Report(_logger, e, $"Read of {request.Segment} at {request.Offset}")));
        }
        finally
        {
            session.EndRead();
        }
    }

    private static DataReply Error(long requestId, StatusCode code, string message) =>
        new() { Error = new ErrorReply { RequestId = requestId, Code = (int)code, Message = message } };

    /// <summary>
    /// What a connection keeps: its append session, its bound on concurrent reads, its reply channel. Released once the
    /// connection's loop has closed it and its last read has ended, in whichever order they come.
    /// </summary>
    public sealed class Session
    {
        private readonly SemaphoreSlim _reads;
        private readonly CancellationTokenSource _ending = new();
        private readonly object _lock = new();
        private readonly int _maxReads;
        private TaskCompletionSource? _drained;
        private bool _closed;

        internal Session(AppendSession appends, int maxReads, FramedReplyChannel replies)
        {
            Appends = appends;
            Replies = replies;
            _reads = new SemaphoreSlim(maxReads, maxReads);
            _maxReads = maxReads;
        }

        public AppendSession Appends { get; }

        public FramedReplyChannel Replies { get; }

        /// <summary>Cancelled when the connection closes: background reads stop waiting.</summary>
        internal CancellationToken Ending => _ending.Token;

        /// <summary>Reads that hold one of the connection's read slots.</summary>
        private int Running => _maxReads - _reads.CurrentCount;

        internal async ValueTask BeginReadAsync(CancellationToken aborted) => await _reads.WaitAsync(aborted);

        internal void EndRead()
        {
            TaskCompletionSource? drained;
            bool release;
            lock (_lock)
            {
                _reads.Release();
                drained = Running == 0 ? _drained : null;
                release = Running == 0 && _closed;
            }

            drained?.TrySetResult();
            if (release)
            {
                Release();
            }
        }

        /// <summary>Completes when no read runs.</summary>
        internal Task ReadsDrainedAsync(CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                if (Running == 0)
                {
                    return Task.CompletedTask;
                }

                _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return _drained.Task.WaitAsync(cancellationToken);
            }
        }

        /// <summary>The connection ended: cancels the reads still running; the last one out releases the session.</summary>
        internal void Close()
        {
            bool release;
            lock (_lock)
            {
                _closed = true;
                release = Running == 0;
            }

            _ending.Cancel();
            if (release)
            {
                Release();
            }
        }

        // The token source is not disposed: the last read may end inside its Cancel, and it holds nothing to free.
        private void Release()
        {
            _reads.Dispose();
            Appends.Dispose();
        }
    }
}
