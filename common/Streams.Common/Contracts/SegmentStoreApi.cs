using System.Buffers;
using Google.Protobuf;
using Streams.Common.Grpc;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Contracts;

/// <summary>
/// One message of the Append request stream: either a protobuf AppendRequest (setup), or a block whose
/// data is written from the caller's buffers without an intermediate copy.
/// </summary>
internal readonly struct AppendRequestFrame
{
    public AppendRequestFrame(AppendRequest message)
    {
        Message = message;
    }

    public AppendRequestFrame(AppendBlockHeader header, ReadOnlySequence<byte> data)
    {
        Header = header;
        Data = data;
    }

    public AppendRequest? Message { get; }

    public AppendBlockHeader Header { get; }

    public ReadOnlySequence<byte> Data { get; }
}

/// <summary>The RPCs of streams.segmentstore.v1.SegmentStore (segmentstore.proto).</summary>
internal static class SegmentStoreApi
{
    public const string ServiceName = "streams.segmentstore.v1.SegmentStore";

    public static readonly Marshaller<AppendRequestFrame> AppendFrameMarshaller = new(
        static f => f.Message?.CalculateSize() ?? AppendBlockCodec.EnvelopeSize(f.Header, f.Data.Length),
        static (f, writer) =>
        {
            if (f.Message is { } message)
            {
                message.WriteTo(writer);
            }
            else
            {
                AppendBlockCodec.WriteEnvelope(writer, f.Header, f.Data);
            }
        },
        // Blocks are read without copying their data (valid until the next message is read); anything else is parsed.
        static sequence => AppendBlockCodec.TryReadEnvelope(sequence, out var header, out var data)
            ? new AppendRequestFrame(header, data)
            : new AppendRequestFrame(AppendRequest.Parser.ParseFrom(sequence)));

    public static readonly Method<AppendRequestFrame, AppendReply> Append = new(
        MethodType.DuplexStreaming, ServiceName, "Append", AppendFrameMarshaller, Marshallers.Protobuf<AppendReply>());

    public static readonly Method<ReadSegmentRequest, ReadSegmentReply> Read = Unary<ReadSegmentRequest, ReadSegmentReply>("Read");
    public static readonly Method<SegmentRequest, SegmentInfo> GetSegmentInfo = Unary<SegmentRequest, SegmentInfo>("GetSegmentInfo");
    public static readonly Method<CreateSegmentRequest, SegmentInfo> CreateSegment = Unary<CreateSegmentRequest, SegmentInfo>("CreateSegment");
    public static readonly Method<SegmentRequest, SegmentInfo> SealSegment = Unary<SegmentRequest, SegmentInfo>("SealSegment");
    public static readonly Method<TruncateSegmentRequest, SegmentInfo> TruncateSegment = Unary<TruncateSegmentRequest, SegmentInfo>("TruncateSegment");
    public static readonly Method<SegmentRequest, DeleteSegmentReply> DeleteSegment = Unary<SegmentRequest, DeleteSegmentReply>("DeleteSegment");

    private static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string name)
        where TRequest : IMessage<TRequest>, new()
        where TResponse : IMessage<TResponse>, new() =>
        new(MethodType.Unary, ServiceName, name, Marshallers.Protobuf<TRequest>(), Marshallers.Protobuf<TResponse>());
}
