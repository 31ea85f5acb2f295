using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Contracts;

/// <summary>
/// One message of the Append request stream: a protobuf AppendRequest (setup), or a block whose data travels without
/// Google.Protobuf's copy. On the client the data is the caller's buffers; on the server it is a pooled copy of the
/// received bytes, released by <see cref="Dispose"/>.
/// </summary>
public sealed class AppendRequestFrame : IDisposable
{
    private readonly IMemoryOwner<byte>? _owner;

    /// <summary>A setup message (or any message sent as protobuf).</summary>
    public AppendRequestFrame(AppendRequest message)
    {
        Message = message;
    }

    /// <summary>A block: its header and data; <paramref name="owner"/>, if given, is released by <see cref="Dispose"/>.</summary>
    public AppendRequestFrame(AppendBlockHeader header, ReadOnlySequence<byte> data, IMemoryOwner<byte>? owner = null)
    {
        Header = header;
        Data = data;
        _owner = owner;
    }

    /// <summary>The setup (or a block encoded unusually), parsed by Google.Protobuf; null for a block read as a frame.</summary>
    public AppendRequest? Message { get; }

    /// <summary>The block's fields other than its data (for a block frame).</summary>
    public AppendBlockHeader Header { get; }

    /// <summary>The block's framed events (for a block frame).</summary>
    public ReadOnlySequence<byte> Data { get; }

    /// <summary>Releases the pooled copy of a received block's data.</summary>
    public void Dispose() => _owner?.Dispose();
}

/// <summary>
/// Append, the data-path rpc of streams.segmentstore.v1.SegmentStore, with a marshaller that moves block data without
/// Google.Protobuf's copies. The bytes on the wire are exactly those of the generated method (a foreign stack sees no
/// difference): the client writes a block straight from the caller's buffers into the HTTP/2 stream, and the server
/// copies it once into pooled memory instead of into a fresh array (on the large-object heap for blocks over 85 KB).
/// </summary>
public static class DataPathMethods
{
    /// <summary>Writes and reads Append request messages with the wire bytes of the generated AppendRequest.</summary>
    public static readonly Marshaller<AppendRequestFrame> AppendFrameMarshaller = new(
        static (frame, context) =>
        {
            if (frame.Message is { } message)
            {
                context.Complete(message.ToByteArray());
                return;
            }

            context.SetPayloadLength(AppendBlockCodec.EnvelopeSize(frame.Header, frame.Data.Length));
            AppendBlockCodec.WriteEnvelope(context.GetBufferWriter(), frame.Header, frame.Data);
            context.Complete();
        },
        static context => ReadAppendFrame(context.PayloadAsReadOnlySequence()));

    /// <summary>The Append method with <see cref="AppendFrameMarshaller"/> for its requests.</summary>
    public static readonly Method<AppendRequestFrame, AppendReply> Append = new(
        MethodType.DuplexStreaming, SegmentStore.Descriptor.FullName, "Append", AppendFrameMarshaller, Protobuf(AppendReply.Parser));

    /// <summary>A marshaller for a generated message type.</summary>
    public static Marshaller<T> Protobuf<T>(MessageParser<T> parser)
        where T : IMessage<T> =>
        new(static (message, context) =>
        {
            context.SetPayloadLength(message.CalculateSize());
            message.WriteTo(context.GetBufferWriter());
            context.Complete();
        }, context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary>
    /// Reads one Append request message. A block is copied once, into pooled memory the frame owns; anything else is
    /// parsed by Google.Protobuf. A malformed message is INVALID_ARGUMENT.
    /// </summary>
    private static AppendRequestFrame ReadAppendFrame(in ReadOnlySequence<byte> message)
    {
        try
        {
            if (!AppendBlockCodec.TryReadEnvelope(message, out var header, out var data))
            {
                return new AppendRequestFrame(AppendRequest.Parser.ParseFrom(message));
            }

            if (data.IsEmpty)
            {
                return new AppendRequestFrame(header, default);
            }

            var owner = MemoryPool<byte>.Shared.Rent((int)data.Length);
            data.CopyTo(owner.Memory.Span);
            return new AppendRequestFrame(header, new ReadOnlySequence<byte>(owner.Memory[..(int)data.Length]), owner);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"Malformed Append request: {e.Message}"));
        }
    }
}
