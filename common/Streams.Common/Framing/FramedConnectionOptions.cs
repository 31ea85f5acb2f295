using Streams.Common.Wire;

namespace Streams.Common.Framing;

/// <summary>Settings of one <see cref="FramedClientConnection"/>.</summary>
public sealed record FramedConnectionOptions
{
    /// <summary>What the peer is called in error messages ("segment store", "bookie").</summary>
    public string PeerName { get; init; } = "server";

    /// <summary>How long connecting and the hello exchange may take together. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A request with no reply within this long closes the connection (the peer is as good as down, so every
    /// request should learn it). <see cref="Timeout.InfiniteTimeSpan"/> (the default) waits for as long as the
    /// caller does: tail reads legitimately wait on the server.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// A connection quiet for this long sends a keep-alive probe. Default 1 s, the SDK's;
    /// <see cref="Timeout.InfiniteTimeSpan"/> turns keep-alives off.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A connection that receives nothing for this long is closed. Default 2.5 s: a frozen peer is left within about
    /// 2.5–2.8 s (checked every quarter interval), while two probes get a chance to be answered.
    /// </summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(2.5);

    /// <summary>Largest reply frame accepted. Default <see cref="RawFraming.DefaultMaxFrameSize"/>.</summary>
    public int MaxFrameSize { get; init; } = RawFraming.DefaultMaxFrameSize;

    /// <summary>Whether keep-alive probes are sent.</summary>
    public bool KeepAlives => KeepAliveInterval != Timeout.InfiniteTimeSpan;

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting that is out of range.</summary>
    public void Validate()
    {
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"ConnectTimeout must be positive, not {ConnectTimeout}.");
        }

        if (RequestTimeout <= TimeSpan.Zero && RequestTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException($"RequestTimeout must be positive or infinite, not {RequestTimeout}.");
        }

        if (KeepAlives && (KeepAliveInterval <= TimeSpan.Zero || KeepAliveTimeout <= TimeSpan.Zero))
        {
            throw new ArgumentException($"KeepAliveInterval ({KeepAliveInterval}) and KeepAliveTimeout ({KeepAliveTimeout}) must be positive.");
        }

        if (MaxFrameSize <= 0)
        {
            throw new ArgumentException($"MaxFrameSize must be positive, not {MaxFrameSize}.");
        }
    }
}
