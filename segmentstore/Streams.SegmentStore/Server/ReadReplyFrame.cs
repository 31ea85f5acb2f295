using Grpc.Core;
using Streams.Common.Server.Framing;
using Streams.Common.Wire;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Server;

/// <summary>
/// A ReadSegmentReply whose data is written straight from cached frames; disposing releases them. On the gRPC
/// carrier it is the message (<see cref="Marshaller"/>); on the raw carrier a DataReply frame body.
/// </summary>
public sealed class ReadReplyFrame(long requestId, SegmentRead result) : IFrameBody
{
    public static readonly Marshaller<ReadReplyFrame> Marshaller = new(
        static (frame, context) =>
        {
            context.SetPayloadLength(ReadReplyCodec.Size(frame.Header, frame.Result.Data.Length));
            ReadReplyCodec.Write(context.GetBufferWriter(), frame.Header, frame.Result.Data);
            context.Complete();
        },
        static _ => throw new NotSupportedException("The server only writes read replies."));

    public SegmentRead Result { get; } = result;

    public ReadReplyHeader Header => new(requestId, Result.Status, Result.Offset, Result.SegmentLength, Result.StartOffset, Result.IsSealed);

    public int Size => ReadReplyCodec.EnvelopeSize(Header, Result.Data.Length);

    public void Write(System.Buffers.IBufferWriter<byte> writer) => ReadReplyCodec.WriteEnvelope(writer, Header, Result.Data);

    public void Dispose() => Result.Dispose();
}
