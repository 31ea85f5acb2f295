using Microsoft.Extensions.Logging;
using Streams.Coordination.Metadata;

namespace Streams.Hosting;

/// <summary>How cluster roles reach ZooKeeper (configuration section "ZooKeeper").</summary>
internal sealed record ZooKeeperSettings
{
    /// <summary>"host:port[,host:port][/root]"; everything of the cluster lives under the root (default /streams).</summary>
    public string? Connect { get; init; }

    /// <summary>
    /// ZooKeeper session timeout. A crashed segment store's containers move after about this long: shorter means
    /// faster failover, too short and a GC pause or a slow disk expires a healthy member. Default 10 s; a controller
    /// that is not told otherwise uses <see cref="ControllerHost.DefaultSessionTimeout"/> (4 s), its leader's takeover time.
    /// </summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(10);

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
