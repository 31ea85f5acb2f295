namespace Streams.ZooKeeper;

/// <summary>What a watch reports (Watcher.Event.EventType).</summary>
public enum WatchEventType
{
    /// <summary>A session state change, not a node event.</summary>
    None = -1,
    /// <summary>The node was created.</summary>
    NodeCreated = 1,
    /// <summary>The node was deleted.</summary>
    NodeDeleted = 2,
    /// <summary>The node's data changed.</summary>
    NodeDataChanged = 3,
    /// <summary>The node's children changed.</summary>
    NodeChildrenChanged = 4,
}

/// <summary>The session's state as clients see it.</summary>
public enum ZooKeeperState
{
    /// <summary>Not yet connected, or reconnecting.</summary>
    Disconnected,
    /// <summary>Connected with a live session.</summary>
    Connected,
    /// <summary>The session expired: ephemeral nodes and watches are gone; create a new client.</summary>
    Expired,
    /// <summary>Closed by the owner.</summary>
    Closed,
}

/// <summary>A watch firing (for a node) or a session state change (Path null).</summary>
public readonly record struct WatchedEvent(WatchEventType Type, ZooKeeperState State, string? Path);
