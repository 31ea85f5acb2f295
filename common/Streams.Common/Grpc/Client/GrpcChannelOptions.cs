namespace Streams.Common.Grpc.Client;

/// <summary>Settings of a client channel. Defaults suit the data plane: large windows and messages.</summary>
internal sealed record GrpcChannelOptions
{
    /// <summary>Largest message the client accepts; larger ones fail with RESOURCE_EXHAUSTED.</summary>
    public int MaxReceiveMessageSize { get; init; } = GrpcProtocol.DefaultMaxMessageSize;

    /// <summary>Largest message the client sends; larger ones fail with RESOURCE_EXHAUSTED before they leave.</summary>
    public int MaxSendMessageSize { get; init; } = GrpcProtocol.DefaultMaxMessageSize;

    /// <summary>How long to wait for a TCP connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// HTTP/2 stream receive window. 16 MiB lets one stream keep a fast link busy; the 64 KiB default
    /// stalls bulk transfers on a window update every 64 KiB.
    /// </summary>
    public int InitialStreamWindowSize { get; init; } = 16 * 1024 * 1024;

    /// <summary>Interval of HTTP/2 keep-alive pings on idle connections.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A connection whose keep-alive ping is not answered within this time is closed, failing its calls.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// For https:// addresses: decides whether to trust the server's certificate (e.g. a private CA). Null uses the
    /// system's trust store.
    /// </summary>
    public System.Net.Security.RemoteCertificateValidationCallback? ServerCertificateValidation { get; init; }
}
