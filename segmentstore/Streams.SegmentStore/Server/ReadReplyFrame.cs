using Streams.Common.Grpc;
using Streams.Common.Wire;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Server;

/// <summary>A ReadSegmentReply whose data is written straight from cached frames; disposing releases them.</summary>
internal sealed class ReadReplyFrame(long requestId, SegmentRead result) : IDisposable
{
    public static readonly Marshaller<ReadReplyFrame> Marshaller = new(
        static f => ReadReplyCodec.Size(f.Header, f.Result.Data.Length),
        static (f, writer) => ReadReplyCodec.Write(writer, f.Header, f.Result.Data),
        static _ => throw new NotSupportedException("The server only writes read replies."));

    public SegmentRead Result { get; } = result;

    public ReadReplyHeader Header => new(requestId, Result.Status, Result.Offset, Result.SegmentLength, Result.StartOffset, Result.IsSealed);

    public void Dispose() => Result.Dispose();
}
