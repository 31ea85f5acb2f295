using Microsoft.AspNetCore.Http;
using Streams.Common.Grpc;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// The response messages of a streaming call. <see cref="Write"/> only buffers, so a handler can send many
/// messages and flush once; <see cref="WriteAsync"/> writes and flushes. Callers serialize their writes.
/// </summary>
internal sealed class ServerResponseStream<T>
{
    private readonly HttpResponse _response;
    private readonly Marshaller<T> _marshaller;
    private readonly int _maxMessageSize;

    public ServerResponseStream(HttpResponse response, Marshaller<T> marshaller, int maxMessageSize)
    {
        _response = response;
        _marshaller = marshaller;
        _maxMessageSize = maxMessageSize;
    }

    /// <summary>Buffers one message; it leaves with the next flush.</summary>
    public void Write(T message)
    {
        var size = _marshaller.Size(message);
        if (size > _maxMessageSize)
        {
            throw new RpcException(StatusCode.ResourceExhausted, $"Response of {size} bytes exceeds the send limit of {_maxMessageSize} bytes.");
        }

        var writer = _response.BodyWriter;
        GrpcProtocol.WriteMessageHeader(writer.GetSpan(GrpcProtocol.MessageHeaderSize), size);
        writer.Advance(GrpcProtocol.MessageHeaderSize);
        _marshaller.Write(message, writer);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        await _response.BodyWriter.FlushAsync(cancellationToken);

    public async ValueTask WriteAsync(T message, CancellationToken cancellationToken = default)
    {
        Write(message);
        await FlushAsync(cancellationToken);
    }
}
