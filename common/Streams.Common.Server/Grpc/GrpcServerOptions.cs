using Streams.Common.Grpc;

namespace Streams.Common.Server.Grpc;

/// <summary>Limits of the gRPC server.</summary>
internal sealed record GrpcServerOptions
{
    /// <summary>Largest request message; larger ones are refused with RESOURCE_EXHAUSTED.</summary>
    public int MaxReceiveMessageSize { get; init; } = GrpcProtocol.DefaultMaxMessageSize;

    /// <summary>Largest response message.</summary>
    public int MaxSendMessageSize { get; init; } = GrpcProtocol.DefaultMaxMessageSize;
}
