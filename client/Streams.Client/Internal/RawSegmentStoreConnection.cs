using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Streams.Common.Framing;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>
/// A connection on the raw framed carrier (docs/wire-protocol.md): the segment store's DataRequest/DataReply messages
/// over a <see cref="FramedClientConnection"/>, which owns the socket, the writer, pending reads and keep-alives.
/// Block data is written from the writer's buffers straight into the socket's pipe; read replies keep their data in
/// pooled buffers.
/// </summary>
internal sealed class RawSegmentStoreConnection : SegmentStoreConnection, IFramedClientProtocol
{
    private const string ClientName = "streams-dotnet";

    private readonly string _host;
    private readonly int _port;
    private FramedClientConnection? _connection;

    private RawSegmentStoreConnection(string host, int port)
    {
        _host = host;
        _port = port;
    }

    /// <summary>Set by <see cref="ConnectAsync"/> before the connection is handed out.</summary>
    private FramedClientConnection Connection => _connection!;

    public static async Task<RawSegmentStoreConnection> ConnectAsync(string host, int port, TimeSpan timeout, KeepAliveSettings keepAlive)
    {
        var connection = new RawSegmentStoreConnection(host, port);
        connection._connection = await FramedClientConnection.ConnectAsync(
            host,
            port,
            new DataRequest { Hello = new Hello { ProtocolVersion = RawFraming.ProtocolVersion, Client = ClientName } },
            connection,
            new FramedConnectionOptions
            {
                PeerName = "segment store", ConnectTimeout = timeout, KeepAliveInterval = keepAlive.Interval, KeepAliveTimeout = keepAlive.Timeout,
            });
        return connection;
    }

    public override ValueTask SendSetupAsync(long requestId, Guid writerId, string segment, CancellationToken cancellationToken) =>
        Connection.WriteAsync(new DataRequest
        {
            Setup = new SetupAppend { RequestId = requestId, WriterId = ByteString.CopyFrom(writerId.ToByteArray()), Segment = segment },
        }, cancellationToken);

    public override ValueTask SendBlockAsync(AppendBlockHeader header, ReadOnlySequence<byte> data, CancellationToken cancellationToken) =>
        Connection.WriteAsync((Header: header, Data: data), static (output, in block) =>
        {
            RawFraming.WriteHeader(output, AppendBlockCodec.EnvelopeSize(block.Header, block.Data.Length));
            AppendBlockCodec.WriteEnvelope(output, block.Header, block.Data);
        }, cancellationToken);

    public override async Task<SegmentReadReply> ReadAsync(string segment, long offset, int maxBytes, int waitMillis, CancellationToken cancellationToken)
    {
        var id = NextRequestId();
        return (SegmentReadReply)await Connection.RequestAsync(id, new DataRequest
        {
            Read = new ReadSegmentRequest { RequestId = id, Segment = segment, Offset = offset, MaxBytes = maxBytes, WaitMillis = waitMillis },
        }, cancellationToken);
    }

    public override async Task<SegmentInfo> GetInfoAsync(string segment, CancellationToken cancellationToken)
    {
        var id = NextRequestId();
        return (SegmentInfo)await Connection.RequestAsync(id, new DataRequest { Info = new SegmentRequest { RequestId = id, Segment = segment } }, cancellationToken);
    }

    public override ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;

    void IFramedClientProtocol.OnFrame(FramedClientConnection connection, in ReadOnlySequence<byte> frame)
    {
        if (ReadReplyCodec.TryReadEnvelope(frame, out var header, out var data))
        {
            connection.Complete(header.RequestId, SegmentReadReply.Copy(header, data));
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
                connection.Complete(reply.Read.RequestId, new SegmentReadReply(
                    new ReadReplyHeader(reply.Read.RequestId, reply.Read.Status, reply.Read.Offset, reply.Read.SegmentLength, reply.Read.StartOffset, reply.Read.Sealed),
                    null, reply.Read.Data.Memory));
                break;
            case DataReply.KindOneofCase.Info:
                connection.Complete(reply.Info.RequestId, reply.Info.Info);
                break;
            case DataReply.KindOneofCase.Hello:
                connection.OnHello(reply.Hello);
                break;
            case DataReply.KindOneofCase.KeepAlive:
                break;
            case DataReply.KindOneofCase.Error:
                var error = new RpcException(new Status((StatusCode)reply.Error.Code, reply.Error.Message));
                if (reply.Error.RequestId == 0)
                {
                    connection.Close(error);
                }
                else
                {
                    connection.Fail(reply.Error.RequestId, error);
                }

                break;
        }
    }

    void IFramedClientProtocol.CheckHello(object reply)
    {
        var hello = (HelloReply)reply;
        if (hello.ProtocolVersion != RawFraming.ProtocolVersion)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The segment store speaks protocol {hello.ProtocolVersion}, not {RawFraming.ProtocolVersion}."));
        }
    }

    IMessage IFramedClientProtocol.CreateKeepAlive(long nonce) => new DataRequest { KeepAlive = new KeepAlive { Nonce = nonce } };

    Exception IFramedClientProtocol.Failure(FramedFailure failure, Exception cause) => failure switch
    {
        // A refusal by the segment store itself (an ErrorReply to the hello) is passed on as it is.
        FramedFailure.ConnectFailed => cause as RpcException
            ?? new RpcException(new Status(StatusCode.Unavailable, $"Cannot connect to the segment store at {_host}:{_port}: {cause.Message}", cause)),
        FramedFailure.Silent => new RpcException(new Status(StatusCode.Unavailable, $"{cause.Message} Reconnecting.", cause)),
        _ => new IOException("The connection to the segment store is closed.", cause),
    };

    /// <summary>Tells every append listener, whose writers then reconnect through the pool.</summary>
    void IFramedClientProtocol.OnClosed(Exception reason) => Close(reason);

    protected override void OnClosed(Exception reason) => _connection?.Close(reason);
}
