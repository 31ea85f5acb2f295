using Streams.Common.Grpc;
using Streams.Contracts.Controller;

namespace Streams.Common.Contracts;

/// <summary>The RPCs of streams.controller.v1.Controller (controller.proto).</summary>
internal static class ControllerApi
{
    public const string ServiceName = "streams.controller.v1.Controller";

    public static readonly Method<ScopeRequest, CreateScopeReply> CreateScope = Unary<ScopeRequest, CreateScopeReply>("CreateScope");
    public static readonly Method<ScopeRequest, DeleteScopeReply> DeleteScope = Unary<ScopeRequest, DeleteScopeReply>("DeleteScope");
    public static readonly Method<ListScopesRequest, ListScopesReply> ListScopes = Unary<ListScopesRequest, ListScopesReply>("ListScopes");
    public static readonly Method<CreateStreamRequest, CreateStreamReply> CreateStream = Unary<CreateStreamRequest, CreateStreamReply>("CreateStream");
    public static readonly Method<UpdateStreamRequest, StreamInfo> UpdateStream = Unary<UpdateStreamRequest, StreamInfo>("UpdateStream");
    public static readonly Method<StreamRef, StreamInfo> DescribeStream = Unary<StreamRef, StreamInfo>("DescribeStream");
    public static readonly Method<ScopeRequest, ListStreamsReply> ListStreams = Unary<ScopeRequest, ListStreamsReply>("ListStreams");
    public static readonly Method<StreamRef, StreamInfo> SealStream = Unary<StreamRef, StreamInfo>("SealStream");
    public static readonly Method<StreamRef, DeleteStreamReply> DeleteStream = Unary<StreamRef, DeleteStreamReply>("DeleteStream");
    public static readonly Method<StreamRef, ActiveSegments> GetActiveSegments = Unary<StreamRef, ActiveSegments>("GetActiveSegments");
    public static readonly Method<SegmentRef, SegmentEndpoint> GetSegmentEndpoint = Unary<SegmentRef, SegmentEndpoint>("GetSegmentEndpoint");
    public static readonly Method<StreamRef, StreamCut> GetStreamCut = Unary<StreamRef, StreamCut>("GetStreamCut");
    public static readonly Method<StreamCut, StreamInfo> TruncateStream = Unary<StreamCut, StreamInfo>("TruncateStream");

    private static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string name)
        where TRequest : Google.Protobuf.IMessage<TRequest>, new()
        where TResponse : Google.Protobuf.IMessage<TResponse>, new() =>
        new(MethodType.Unary, ServiceName, name, Marshallers.Protobuf<TRequest>(), Marshallers.Protobuf<TResponse>());
}
