using Microsoft.AspNetCore.Http;

namespace Streams.Common.Server.Grpc;

/// <summary>What a handler knows about its call: headers, deadline, cancellation and the peer.</summary>
internal sealed class ServerCallContext
{
    public ServerCallContext(HttpContext httpContext, string method, DateTime? deadline, CancellationToken cancellationToken)
    {
        HttpContext = httpContext;
        Method = method;
        Deadline = deadline;
        CancellationToken = cancellationToken;
    }

    public HttpContext HttpContext { get; }

    /// <summary>"/package.Service/Method".</summary>
    public string Method { get; }

    /// <summary>The client's deadline (UTC), if it sent grpc-timeout.</summary>
    public DateTime? Deadline { get; }

    /// <summary>Cancelled when the client cancels, the connection drops or the deadline expires.</summary>
    public CancellationToken CancellationToken { get; }

    public IHeaderDictionary RequestHeaders => HttpContext.Request.Headers;

    public string Peer => $"{HttpContext.Connection.RemoteIpAddress}:{HttpContext.Connection.RemotePort}";
}
