using Google.Protobuf;
using Grpc.Core;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// Grpc.AspNetCore parses a unary request before any interceptor runs and reports a parse failure as UNKNOWN; the
/// documented status for a malformed message is INVALID_ARGUMENT. Every method a Streams server binds goes through here.
/// </summary>
public static class CheckedRequests
{
    /// <summary>The method with a request marshaller that turns a message that does not parse into INVALID_ARGUMENT.</summary>
    public static Method<TRequest, TResponse> Of<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        var inner = method.RequestMarshaller;
        var marshaller = new Marshaller<TRequest>(inner.ContextualSerializer, deserializationContext =>
        {
            try
            {
                return inner.ContextualDeserializer(deserializationContext);
            }
            catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Malformed {typeof(TRequest).Name} message: {e.Message}"));
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }
}
