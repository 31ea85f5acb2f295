namespace Streams.ZooKeeper;

/// <summary>How a node is created (the wire's create flags).</summary>
public enum CreateMode
{
    /// <summary>Stays until deleted.</summary>
    Persistent = 0,
    /// <summary>Deleted when the creating session ends.</summary>
    Ephemeral = 1,
    /// <summary>Persistent, with a 10-digit sequence number appended to the name.</summary>
    PersistentSequential = 2,
    /// <summary>Ephemeral, with a sequence number appended.</summary>
    EphemeralSequential = 3,
}
