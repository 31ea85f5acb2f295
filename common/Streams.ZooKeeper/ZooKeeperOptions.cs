namespace Streams.ZooKeeper;

/// <summary>How to reach ZooKeeper.</summary>
public sealed record ZooKeeperOptions
{
    /// <summary>"host:port,host:port[/chroot]". Every path the client sees is relative to the chroot.</summary>
    public required string ConnectionString { get; init; }

    /// <summary>
    /// Session timeout asked of the server (it may clamp it). Ephemeral nodes outlive a crashed owner by this long,
    /// so it bounds failover time; too short and a GC pause expires healthy sessions.
    /// </summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for a TCP connection to one server.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Resume this session instead of creating one (with <see cref="SessionPassword"/>).</summary>
    public long SessionId { get; init; }

    /// <summary>The password of the session in <see cref="SessionId"/>.</summary>
    public byte[]? SessionPassword { get; init; }
}
