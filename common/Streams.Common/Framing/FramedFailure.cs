namespace Streams.Common.Framing;

/// <summary>What went wrong on a <see cref="FramedClientConnection"/>; the protocol turns it into its own error.</summary>
public enum FramedFailure
{
    /// <summary>The connection or its hello could not be established.</summary>
    ConnectFailed,

    /// <summary>A write was attempted on a connection that is already closed.</summary>
    Closed,

    /// <summary>Writing or flushing a frame failed; the connection is now closed.</summary>
    SendFailed,

    /// <summary>The connection closed while a request waited for its reply.</summary>
    Lost,

    /// <summary>A request had no reply within the request timeout; the connection is now closed.</summary>
    TimedOut,

    /// <summary>The peer answered nothing, not even keep-alives, for the keep-alive timeout.</summary>
    Silent,
}
