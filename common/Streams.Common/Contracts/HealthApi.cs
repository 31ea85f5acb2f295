using Streams.Common.Grpc;
using Streams.Contracts.Health;

namespace Streams.Common.Contracts;

/// <summary>The RPCs of grpc.health.v1.Health.</summary>
internal static class HealthApi
{
    public const string ServiceName = "grpc.health.v1.Health";

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> Check = new(
        MethodType.Unary, ServiceName, "Check", Marshallers.Protobuf<HealthCheckRequest>(), Marshallers.Protobuf<HealthCheckResponse>());

    public static readonly Method<HealthCheckRequest, HealthCheckResponse> Watch = new(
        MethodType.ServerStreaming, ServiceName, "Watch", Marshallers.Protobuf<HealthCheckRequest>(), Marshallers.Protobuf<HealthCheckResponse>());
}
