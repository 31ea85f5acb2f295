using System.Net;
using System.Net.Security;

namespace Streams.Common.Grpc.Client;

/// <summary>
/// A client connection to one gRPC server, on HTTP/2 over <see cref="SocketsHttpHandler"/>: cleartext with
/// prior knowledge for http:// addresses, TLS with ALPN for https://. Calls are multiplexed as HTTP/2 streams;
/// more connections open when one is full. Thread-safe; dispose it when done.
/// </summary>
internal sealed class GrpcChannel : IDisposable
{
    private GrpcChannel(Uri address, GrpcChannelOptions options, HttpMessageInvoker invoker)
    {
        Address = address;
        Options = options;
        Invoker = invoker;
    }

    public Uri Address { get; }

    public GrpcChannelOptions Options { get; }

    internal HttpMessageInvoker Invoker { get; }

    /// <summary>Creates a channel to an address such as "http://127.0.0.1:9090".</summary>
    public static GrpcChannel ForAddress(string address, GrpcChannelOptions? options = null) =>
        ForAddress(new Uri(address, UriKind.Absolute), options);

    public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions? options = null)
    {
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"'{address}' is not an http:// or https:// address.", nameof(address));
        }

        options ??= new GrpcChannelOptions();
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = options.InitialStreamWindowSize,
            ConnectTimeout = options.ConnectTimeout,
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
            UseCookies = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                ApplicationProtocols = [SslApplicationProtocol.Http2],
                RemoteCertificateValidationCallback = options.ServerCertificateValidation,
            },
        };
        return new GrpcChannel(address, options, new HttpMessageInvoker(handler, disposeHandler: true));
    }

    /// <summary>Makes a unary call.</summary>
    public async Task<TResponse> UnaryAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default)
    {
        await using var call = new GrpcCall<TRequest, TResponse>(this, method, options, request, hasRequest: true);
        return await call.ReadUnaryResponseAsync();
    }

    /// <summary>Starts a server-streaming call; read it with MoveNextAsync and dispose it.</summary>
    public GrpcCall<TRequest, TResponse> ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CallOptions options = default) =>
        new(this, method, options, request, hasRequest: true);

    /// <summary>Starts a bidirectional-streaming (or client-streaming) call.</summary>
    public GrpcCall<TRequest, TResponse> Duplex<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options = default) =>
        new(this, method, options, default, hasRequest: false);

    public void Dispose() => Invoker.Dispose();
}
