namespace Streams.ZooKeeper;

/// <summary>ZooKeeper's error codes (KeeperException.Code), as sent on the wire.</summary>
public enum ZooKeeperError
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>A system error.</summary>
    SystemError = -1,
    /// <summary>Runtime inconsistency; in a failed multi, the ops that were rolled back.</summary>
    RuntimeInconsistency = -2,
    /// <summary>Data inconsistency.</summary>
    DataInconsistency = -3,
    /// <summary>The connection was lost before the outcome was known.</summary>
    ConnectionLoss = -4,
    /// <summary>A marshalling error.</summary>
    MarshallingError = -5,
    /// <summary>The operation is not implemented.</summary>
    Unimplemented = -6,
    /// <summary>The operation timed out.</summary>
    OperationTimeout = -7,
    /// <summary>Bad arguments.</summary>
    BadArguments = -8,
    /// <summary>The session is unknown.</summary>
    UnknownSession = -12,
    /// <summary>An API error.</summary>
    ApiError = -100,
    /// <summary>The node does not exist.</summary>
    NoNode = -101,
    /// <summary>Not authenticated.</summary>
    NoAuth = -102,
    /// <summary>The version did not match (compare-and-set failed).</summary>
    BadVersion = -103,
    /// <summary>Ephemeral nodes may not have children.</summary>
    NoChildrenForEphemerals = -108,
    /// <summary>The node already exists.</summary>
    NodeExists = -110,
    /// <summary>The node has children.</summary>
    NotEmpty = -111,
    /// <summary>The session expired: its ephemeral nodes are gone.</summary>
    SessionExpired = -112,
    /// <summary>Invalid ACL.</summary>
    InvalidAcl = -114,
    /// <summary>Authentication failed.</summary>
    AuthFailed = -115,
    /// <summary>The session moved to another server connection.</summary>
    SessionMoved = -118,
    /// <summary>The server is read-only.</summary>
    NotReadOnly = -119,
    /// <summary>The request timed out.</summary>
    RequestTimeout = -122,
    /// <summary>The request was throttled.</summary>
    Throttled = -127,
}

/// <summary>A ZooKeeper operation failed with <see cref="Error"/>.</summary>
public sealed class ZooKeeperException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ZooKeeperException(ZooKeeperError error, string? path = null, Exception? innerException = null)
        : base(path is null ? $"ZooKeeper: {error}" : $"ZooKeeper: {error} for {path}", innerException)
    {
        Error = error;
        Path = path;
    }

    /// <summary>The error code.</summary>
    public ZooKeeperError Error { get; }

    /// <summary>The node concerned, if any.</summary>
    public string? Path { get; }
}
