using System.Net;
using System.Net.Security;
using Grpc.Core;
using Grpc.Net.Client;

namespace Streams.Common.Grpc;

/// <summary>Settings of a client channel. The defaults suit the data plane: large windows and messages.</summary>
public sealed record GrpcChannelSettings
{
    /// <summary>How long to wait for a TCP connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval of HTTP/2 keep-alive pings while calls are active.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A connection whose keep-alive ping is not answered within this time is closed, failing its calls.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// For https:// addresses: decides whether to trust the server's certificate (e.g. a private CA). Null uses the
    /// system's trust store.
    /// </summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; init; }
}

/// <summary>
/// Creates Grpc.Net.Client channels with the settings every Streams client shares: HTTP/2 on
/// <see cref="SocketsHttpHandler"/> (cleartext with prior knowledge for http://, TLS with ALPN for https://), several
/// connections when one is full, 16 MiB stream windows, and message limits that fit the largest event.
/// </summary>
public static class GrpcChannels
{
    /// <summary>
    /// Largest message either side sends or accepts. 16 MiB leaves room for the largest event (8 MiB) plus framing;
    /// gRPC's own default of 4 MiB would refuse legal events. Larger messages fail with RESOURCE_EXHAUSTED.
    /// </summary>
    public const int MaxMessageSize = 16 * 1024 * 1024;

    /// <summary>
    /// HTTP/2 stream receive window. 16 MiB lets one stream keep a fast link busy; the 64 KiB default stalls bulk
    /// transfers on a window update every 64 KiB.
    /// </summary>
    private const int StreamWindowSize = 16 * 1024 * 1024;

    /// <summary>A channel to an address such as "http://127.0.0.1:9090". Dispose it when done.</summary>
    public static GrpcChannel Create(string address, GrpcChannelSettings? settings = null)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"'{address}' is not an http:// or https:// address.", nameof(address));
        }

        settings ??= new GrpcChannelSettings();
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = StreamWindowSize,
            ConnectTimeout = settings.ConnectTimeout,
            KeepAlivePingDelay = settings.KeepAlivePingDelay,
            KeepAlivePingTimeout = settings.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
            UseCookies = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                ApplicationProtocols = [SslApplicationProtocol.Http2],
                RemoteCertificateValidationCallback = settings.ServerCertificateValidation,
            },
        };
        return GrpcChannel.ForAddress(uri, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = MaxMessageSize,
            MaxSendMessageSize = MaxMessageSize,
            // Retries are the callers' business: they know which calls are idempotent.
            MaxRetryAttempts = 0,
        });
    }

    /// <summary>Call options with a deadline <paramref name="timeout"/> from now.</summary>
    public static CallOptions Deadline(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        new(deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken);
}
