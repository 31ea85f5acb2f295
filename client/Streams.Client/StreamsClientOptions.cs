namespace Streams.Client;

/// <summary>Which carrier the SDK uses for appends and reads.</summary>
public enum DataTransport
{
    /// <summary>The raw framed TCP carrier: the fastest path, and the default.</summary>
    Raw,

    /// <summary>gRPC (HTTP/2): the portable path, e.g. through proxies that only pass HTTP/2.</summary>
    Grpc,
}

/// <summary>Settings of a <see cref="StreamsClient"/>.</summary>
public sealed record StreamsClientOptions
{
    /// <summary>The default controller address: where <c>streams standalone</c> listens.</summary>
    public const string DefaultControllerUri = "http://127.0.0.1:9090";

    /// <summary>
    /// The controller's gRPC address, or the addresses of a cluster's controllers separated by commas
    /// ("http://c1:9090,http://c2:9090"). Every controller serves every call; when one is unavailable the client moves
    /// to the next at once, so a controller that dies costs a client one failed attempt.
    /// </summary>
    public string ControllerUri { get; init; } = DefaultControllerUri;

    /// <summary>Carrier for appends and reads; control calls always use gRPC.</summary>
    public DataTransport Transport { get; init; } = DataTransport.Raw;

    /// <summary>Timeout of each control call (create, describe, ...).</summary>
    public TimeSpan ControlTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often a connection to a segment store is probed while it is quiet (raw carrier: a keep-alive frame; gRPC:
    /// an HTTP/2 ping), and a connection to a controller while a call waits on it (an HTTP/2 ping). Default 1 s.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A connection that answers nothing for this long is dropped and its writers and readers reconnect: this is how
    /// a frozen or cut-off segment store is left behind once its containers have moved elsewhere. Connecting (with
    /// its hello) gets as long. Default 2.5 s: the raw carrier notices a frozen store within about 2.8 s; the gRPC
    /// carrier, whose HTTP/2 pings are checked about once a second by .NET, within about 4.5 s. A controller that goes
    /// silent under a call fails it the same way, and the call moves to the next controller in <see cref="ControllerUri"/>.
    /// </summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(2.5);

    /// <summary>How long to keep retrying a connection to a segment store before failing the writes that wait on it.</summary>
    public TimeSpan ReconnectTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
