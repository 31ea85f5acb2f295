using System.Buffers;
using Google.Protobuf;

namespace Streams.Common.Grpc;

/// <summary>
/// Turns messages into bytes and back. The size is known before writing because a gRPC message is
/// preceded by its length; writing goes straight into the transport's buffers.
/// </summary>
internal sealed class Marshaller<T>
{
    public Marshaller(Func<T, int> size, Action<T, IBufferWriter<byte>> write, Func<ReadOnlySequence<byte>, T> read)
    {
        Size = size;
        Write = write;
        Read = read;
    }

    public Func<T, int> Size { get; }

    public Action<T, IBufferWriter<byte>> Write { get; }

    /// <summary>Parses a message. The sequence is only valid during the call: keep nothing that points into it.</summary>
    public Func<ReadOnlySequence<byte>, T> Read { get; }
}

internal static class Marshallers
{
    public static Marshaller<T> Protobuf<T>()
        where T : IMessage<T>, new()
    {
        var parser = new MessageParser<T>(() => new T());
        return new Marshaller<T>(
            static m => m.CalculateSize(),
            static (m, writer) => m.WriteTo(writer),
            sequence => parser.ParseFrom(sequence));
    }
}
