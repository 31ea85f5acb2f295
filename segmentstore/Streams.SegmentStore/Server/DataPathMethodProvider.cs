using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Streams.Common.Contracts;
using Streams.Common.Server.Grpc;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Server;

/// <summary>
/// Binds Append and Read of <see cref="GrpcSegmentStoreService"/> with the data-path marshallers, in place of their
/// generated bindings (which <see cref="Common.Server.Grpc.CustomMarshalledAttribute"/> skips). Same names, same bytes
/// on the wire.
/// </summary>
internal sealed class DataPathMethodProvider : IServiceMethodProvider<GrpcSegmentStoreService>
{
    /// <summary>The server's view of Read: the reply is written from cached frames without copying them into a message.</summary>
    private static readonly Method<ReadSegmentRequest, ReadReplyFrame> ReadMethod = CheckedRequests.Of(new Method<ReadSegmentRequest, ReadReplyFrame>(
        MethodType.Unary, Contracts.SegmentStore.SegmentStore.Descriptor.FullName, "Read", DataPathMethods.Protobuf(ReadSegmentRequest.Parser), ReadReplyFrame.Marshaller));

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<GrpcSegmentStoreService> context)
    {
        context.AddDuplexStreamingMethod(DataPathMethods.Append, Metadata(), static (service, requests, responses, call) => service.AppendAsync(requests, responses, call));
        context.AddUnaryMethod(ReadMethod, Metadata(), static (service, request, call) => service.ReadAsync(request, call));
    }

    private static List<object> Metadata() => [new HttpMethodMetadata(["POST"], acceptCorsPreflight: true)];
}

/// <summary>Registers the segment store's gRPC service and what both carriers need.</summary>
public static class SegmentStoreGrpcRegistration
{
    public static IServiceCollection AddSegmentStoreGrpc(this IServiceCollection services, SegmentRequests requests) =>
        services
            .AddSingleton(requests)
            .AddSingleton(new GrpcSegmentStoreService(requests))
            .AddSingleton<IServiceMethodProvider<GrpcSegmentStoreService>, DataPathMethodProvider>();
}
