using Microsoft.Extensions.Logging;
using Streams.Coordination.Metadata;

namespace Streams.Hosting;

/// <summary>How cluster roles reach ZooKeeper (configuration section "ZooKeeper").</summary>
internal sealed record ZooKeeperSettings
{
    /// <summary>"host:port[,host:port][/root]"; everything of the cluster lives under the root (default /streams).</summary>
    public string? Connect { get; init; }

    /// <summary>
    /// ZooKeeper session timeout. A crashed or frozen segment store's containers move after about this long, so it
    /// is most of what a failover costs the writers: shorter means faster failover, too short and a GC pause, a slow
    /// disk or a stalled VM longer than this expires a healthy member (its containers move, and it takes its share back
    /// when it rejoins). Default <see cref="DefaultSessionTimeout"/>; a controller that is not told otherwise uses
    /// <see cref="ControllerHost.DefaultSessionTimeout"/>, its leader's takeover time.
    /// </summary>
    public TimeSpan SessionTimeout { get; init; } = DefaultSessionTimeout;

    /// <summary>
    /// 4 s: writes resume within 5 s of a segment store's crash or freeze (session expiry, then about a second to
    /// reassign, fence, recover and redirect the writers), and it is the shortest session a ZooKeeper server grants
    /// with its default tickTime of 2 s (minSessionTimeout is two ticks; a shorter request is raised to it). Was 10 s.
    /// </summary>
    public static readonly TimeSpan DefaultSessionTimeout = TimeSpan.FromSeconds(4);

    public async Task<ZooKeeperMetadataStore> ConnectAsync(ILogger logger, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(Connect))
        {
            throw new ArgumentException("ZooKeeper:Connect is required in cluster mode: pass --zookeeper host:port.");
        }

        if (SessionTimeout < TimeSpan.FromSeconds(1) || SessionTimeout > TimeSpan.FromMinutes(2))
        {
            throw new ArgumentException($"ZooKeeper:SessionTimeout must be between 00:00:01 and 00:02:00 (is {SessionTimeout}).");
        }

        var slash = Connect.IndexOf('/', StringComparison.Ordinal);
        var hosts = slash < 0 ? Connect : Connect[..slash];
        var root = slash < 0 ? "/streams" : Connect[slash..].TrimEnd('/');
        return await ZooKeeperMetadataStore.ConnectAsync(hosts, root.Length == 0 ? "/streams" : root, SessionTimeout, logger, cancellationToken);
    }
}
