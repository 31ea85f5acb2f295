namespace Streams.ZooKeeper;

/// <summary>A znode's metadata (ZooKeeper's Stat record).</summary>
public readonly record struct ZooKeeperStat(
    long Czxid, long Mzxid, long Ctime, long Mtime, int Version, int Cversion, int Aversion,
    long EphemeralOwner, int DataLength, int NumChildren, long Pzxid);
