namespace Streams.Common.Grpc;

internal enum MethodType
{
    Unary,
    ServerStreaming,
    ClientStreaming,
    DuplexStreaming,
}

/// <summary>Describes one RPC: its path ("/package.Service/Method"), its shape and its message codecs.</summary>
internal sealed class Method<TRequest, TResponse>
{
    public Method(MethodType type, string serviceName, string name, Marshaller<TRequest> request, Marshaller<TResponse> response)
    {
        Type = type;
        ServiceName = serviceName;
        Name = name;
        FullName = "/" + serviceName + "/" + name;
        RequestMarshaller = request;
        ResponseMarshaller = response;
    }

    public MethodType Type { get; }

    public string ServiceName { get; }

    public string Name { get; }

    /// <summary>The HTTP/2 :path of the call.</summary>
    public string FullName { get; }

    public Marshaller<TRequest> RequestMarshaller { get; }

    public Marshaller<TResponse> ResponseMarshaller { get; }
}
