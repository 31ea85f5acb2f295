using Streams.Common.Grpc;
using Streams.Common.Wire;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// The request messages of a streaming call. <see cref="Current"/> may point into transport buffers
/// (for messages whose codec keeps payload slices) and is valid until the next <see cref="MoveNextAsync"/>.
/// </summary>
internal sealed class ServerRequestStream<T>
{
    private readonly FramedMessageReader _reader;
    private readonly Marshaller<T> _marshaller;

    public ServerRequestStream(FramedMessageReader reader, Marshaller<T> marshaller)
    {
        _reader = reader;
        _marshaller = marshaller;
    }

    public T Current { get; private set; } = default!;

    public async ValueTask<bool> MoveNextAsync(CancellationToken cancellationToken = default)
    {
        if (!await _reader.MoveNextAsync(cancellationToken))
        {
            return false;
        }

        Current = _marshaller.Read(_reader.Current);
        return true;
    }
}
