using Streams.Common.Grpc;
using Streams.Contracts.ExternalScaler;

namespace Streams.Common.Contracts;

/// <summary>The RPCs of KEDA's externalscaler.ExternalScaler.</summary>
internal static class ExternalScalerApi
{
    public const string ServiceName = "externalscaler.ExternalScaler";

    public static readonly Method<ScaledObjectRef, IsActiveResponse> IsActive = new(
        MethodType.Unary, ServiceName, "IsActive", Marshallers.Protobuf<ScaledObjectRef>(), Marshallers.Protobuf<IsActiveResponse>());

    public static readonly Method<ScaledObjectRef, IsActiveResponse> StreamIsActive = new(
        MethodType.ServerStreaming, ServiceName, "StreamIsActive", Marshallers.Protobuf<ScaledObjectRef>(), Marshallers.Protobuf<IsActiveResponse>());

    public static readonly Method<ScaledObjectRef, GetMetricSpecResponse> GetMetricSpec = new(
        MethodType.Unary, ServiceName, "GetMetricSpec", Marshallers.Protobuf<ScaledObjectRef>(), Marshallers.Protobuf<GetMetricSpecResponse>());

    public static readonly Method<GetMetricsRequest, GetMetricsResponse> GetMetrics = new(
        MethodType.Unary, ServiceName, "GetMetrics", Marshallers.Protobuf<GetMetricsRequest>(), Marshallers.Protobuf<GetMetricsResponse>());

    public static readonly Method<ScaledObjectRef, GetMetricSpecResponse> StreamMetricSpec = new(
        MethodType.ServerStreaming, ServiceName, "StreamMetricSpec", Marshallers.Protobuf<ScaledObjectRef>(), Marshallers.Protobuf<GetMetricSpecResponse>());
}
