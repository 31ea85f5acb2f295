namespace Streams.ZooKeeper;

/// <summary>One operation of a multi-op transaction: all apply, or none.</summary>
public abstract record ZooKeeperOp(string Path)
{
    /// <summary>Creates a node.</summary>
    public sealed record Create(string Path, byte[] Data, CreateMode Mode = CreateMode.Persistent) : ZooKeeperOp(Path);

    /// <summary>Deletes a node at a version (-1: any).</summary>
    public sealed record Delete(string Path, int Version = -1) : ZooKeeperOp(Path);

    /// <summary>Sets a node's data at a version (-1: any).</summary>
    public sealed record SetData(string Path, byte[] Data, int Version = -1) : ZooKeeperOp(Path);

    /// <summary>Fails the transaction unless the node is at the version.</summary>
    public sealed record Check(string Path, int Version) : ZooKeeperOp(Path);
}

/// <summary>The outcome of one operation of a multi-op transaction.</summary>
/// <param name="Error">Ok, the error that failed the transaction, or RuntimeInconsistency for ops rolled back with it.</param>
/// <param name="Path">For creates: the created path (with its sequence number).</param>
/// <param name="Stat">For set-data: the node's new stat.</param>
public readonly record struct ZooKeeperOpResult(ZooKeeperError Error, string? Path = null, ZooKeeperStat? Stat = null);

/// <summary>Helpers for multi-op results.</summary>
public static class ZooKeeperOpResults
{
    /// <summary>True if the transaction applied: every operation succeeded.</summary>
    public static bool Succeeded(this IReadOnlyList<ZooKeeperOpResult> results) => results.All(r => r.Error == ZooKeeperError.Ok);

    /// <summary>The error that failed the transaction, or Ok.</summary>
    public static ZooKeeperError FirstError(this IReadOnlyList<ZooKeeperOpResult> results) =>
        results.FirstOrDefault(r => r.Error is not ZooKeeperError.Ok and not ZooKeeperError.RuntimeInconsistency).Error;
}
