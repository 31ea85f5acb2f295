using Grpc.Core;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;

namespace Streams.Controller.Server;

/// <summary>streams.controller.v1.Controller: the generated service, answered by <see cref="ControllerService"/>.</summary>
public sealed class GrpcControllerService(ControllerService controller) : Contracts.Controller.Controller.ControllerBase
{
    public override async Task<CreateScopeReply> CreateScope(ScopeRequest request, ServerCallContext context) =>
        new() { Created = await controller.CreateScopeAsync(request.Scope, context.CancellationToken) };

    public override async Task<DeleteScopeReply> DeleteScope(ScopeRequest request, ServerCallContext context) =>
        new() { Deleted = await controller.DeleteScopeAsync(request.Scope, context.CancellationToken) };

    public override async Task<ListScopesReply> ListScopes(ListScopesRequest request, ServerCallContext context)
    {
        var reply = new ListScopesReply();
        reply.Scopes.AddRange(await controller.ListScopesAsync(context.CancellationToken));
        return reply;
    }

    public override async Task<CreateStreamReply> CreateStream(CreateStreamRequest request, ServerCallContext context)
    {
        var (created, info) = await controller.CreateStreamAsync(request.Scope, request.Stream, request.Config, context.CancellationToken);
        return new CreateStreamReply { Created = created, Info = info };
    }

    public override Task<StreamInfo> DescribeStream(StreamRef request, ServerCallContext context) =>
        controller.DescribeStreamAsync(request.Scope, request.Stream, context.CancellationToken);

    public override async Task<ListStreamsReply> ListStreams(ScopeRequest request, ServerCallContext context)
    {
        var reply = new ListStreamsReply();
        reply.Streams.AddRange(await controller.ListStreamsAsync(request.Scope, context.CancellationToken));
        return reply;
    }

    public override Task<StreamInfo> UpdateStream(UpdateStreamRequest request, ServerCallContext context) =>
        controller.UpdateStreamAsync(request.Scope, request.Stream, request.Config, context.CancellationToken);

    public override Task<StreamInfo> SealStream(StreamRef request, ServerCallContext context) =>
        controller.SealStreamAsync(request.Scope, request.Stream, context.CancellationToken);

    public override async Task<DeleteStreamReply> DeleteStream(StreamRef request, ServerCallContext context) =>
        new() { Deleted = await controller.DeleteStreamAsync(request.Scope, request.Stream, context.CancellationToken) };

    public override Task<ActiveSegments> GetActiveSegments(StreamRef request, ServerCallContext context) =>
        controller.GetActiveSegmentsAsync(request.Scope, request.Stream, context.CancellationToken);

    public override Task<SegmentEndpoint> GetSegmentEndpoint(SegmentRef request, ServerCallContext context) =>
        controller.GetSegmentEndpointAsync(request.Segment, context.CancellationToken);

    public override Task<StreamCut> GetStreamCut(StreamRef request, ServerCallContext context) =>
        controller.GetStreamCutAsync(request.Scope, request.Stream, context.CancellationToken);

    public override Task<StreamInfo> TruncateStream(StreamCut request, ServerCallContext context) =>
        controller.TruncateStreamAsync(request, context.CancellationToken);
}
