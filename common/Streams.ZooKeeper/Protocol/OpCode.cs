namespace Streams.ZooKeeper.Protocol;

/// <summary>ZooKeeper request types (ZooDefs.OpCode) and reserved xids.</summary>
internal static class OpCode
{
    public const int Create = 1;
    public const int Delete = 2;
    public const int Exists = 3;
    public const int GetData = 4;
    public const int SetData = 5;
    public const int GetChildren = 8;
    public const int Ping = 11;
    public const int Check = 13;
    public const int Multi = 14;
    public const int Create2 = 15;
    public const int SetWatches = 101;
    public const int CloseSession = -11;
    public const int Error = -1;

    public const int NotificationXid = -1;
    public const int PingXid = -2;
    public const int SetWatchesXid = -8;
}
