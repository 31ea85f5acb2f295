using Streams.Common.Contracts;
using Streams.Common.Server.Grpc;
using Streams.Contracts.Controller;
using Streams.Controller.Streams;

namespace Streams.Controller.Server;

/// <summary>streams.controller.v1.Controller on the gRPC carrier.</summary>
internal sealed class GrpcControllerService(ControllerService controller)
{
    public void Register(GrpcServer server)
    {
        server.AddUnary(ControllerApi.CreateScope, async (r, c) => new CreateScopeReply { Created = await controller.CreateScopeAsync(r.Scope, c.CancellationToken) });
        server.AddUnary(ControllerApi.DeleteScope, async (r, c) => new DeleteScopeReply { Deleted = await controller.DeleteScopeAsync(r.Scope, c.CancellationToken) });
        server.AddUnary(ControllerApi.ListScopes, async (_, c) =>
        {
            var reply = new ListScopesReply();
            reply.Scopes.AddRange(await controller.ListScopesAsync(c.CancellationToken));
            return reply;
        });
        server.AddUnary(ControllerApi.CreateStream, async (r, c) =>
        {
            var (created, info) = await controller.CreateStreamAsync(r.Scope, r.Stream, r.Config, c.CancellationToken);
            return new CreateStreamReply { Created = created, Info = info };
        });
        server.AddUnary(ControllerApi.DescribeStream, async (r, c) => await controller.DescribeStreamAsync(r.Scope, r.Stream, c.CancellationToken));
        server.AddUnary(ControllerApi.ListStreams, async (r, c) =>
        {
            var reply = new ListStreamsReply();
            reply.Streams.AddRange(await controller.ListStreamsAsync(r.Scope, c.CancellationToken));
            return reply;
        });
        server.AddUnary(ControllerApi.SealStream, async (r, c) => await controller.SealStreamAsync(r.Scope, r.Stream, c.CancellationToken));
        server.AddUnary(ControllerApi.DeleteStream, async (r, c) => new DeleteStreamReply { Deleted = await controller.DeleteStreamAsync(r.Scope, r.Stream, c.CancellationToken) });
        server.AddUnary(ControllerApi.GetActiveSegments, async (r, c) => await controller.GetActiveSegmentsAsync(r.Scope, r.Stream, c.CancellationToken));
        server.AddUnary(ControllerApi.GetSegmentEndpoint, async (r, c) => await controller.GetSegmentEndpointAsync(r.Segment, c.CancellationToken));
        server.AddUnary(ControllerApi.GetStreamCut, async (r, c) => await controller.GetStreamCutAsync(r.Scope, r.Stream, c.CancellationToken));
        server.AddUnary(ControllerApi.UpdateStream, async (r, c) => await controller.UpdateStreamAsync(r.Scope, r.Stream, r.Config, c.CancellationToken));
        server.AddUnary(ControllerApi.TruncateStream, async (r, c) => await controller.TruncateStreamAsync(r, c.CancellationToken));
    }
}
