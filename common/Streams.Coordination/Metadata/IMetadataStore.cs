namespace Streams.Coordination.Metadata;

/// <summary>A value and the version it was read at. Versions start at 0 on creation and grow by 1 per update.</summary>
public readonly record struct VersionedValue(byte[] Data, long Version);

/// <summary>One operation of an atomic commit (<see cref="IMetadataStore.TryCommitAsync"/>).</summary>
public abstract record MetadataOp(string Path)
{
    /// <summary>Create the path; fails the commit if it exists.</summary>
    public sealed record Create(string Path, byte[] Data) : MetadataOp(Path);

    /// <summary>Replace the value if at the version (-1: any); fails the commit otherwise.</summary>
    public sealed record Set(string Path, byte[] Data, long ExpectedVersion) : MetadataOp(Path);

    /// <summary>Delete the path if at the version (-1: any); fails the commit otherwise.</summary>
    public sealed record Delete(string Path, long ExpectedVersion = -1) : MetadataOp(Path);

    /// <summary>Fail the commit unless the path is at the version.</summary>
    public sealed record Check(string Path, long ExpectedVersion) : MetadataOp(Path);
}

/// <summary>
/// Versioned, durable metadata and coordination under slash-separated paths ("/scopes/a/streams/b"), in the manner of
/// ZooKeeper: the cluster uses ZooKeeper itself, standalone an embedded journal. Every mutation is durable when it
/// completes. Conditional updates compare versions, so concurrent writers (several controllers, a zombie segment
/// store) never overwrite each other blindly. A parent need not exist before its children.
/// <para>
/// Coordination: ephemeral nodes live as long as this store's session (a process, or its ZooKeeper session);
/// sequential nodes get increasing numbers that never repeat; reads can leave a one-shot watch. When the session is
/// lost, <see cref="SessionLost"/> completes: the ephemeral nodes are gone, and whoever relied on them (a registration,
/// a leadership) must act as if it no longer holds them.
/// </para>
/// Expected conflicts are results (null/false), not exceptions.
/// </summary>
public interface IMetadataStore : IAsyncDisposable
{
    ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Creates a path; returns false if it already exists.</summary>
    ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces a value if its version is <paramref name="expectedVersion"/> (-1: any version). Returns the new
    /// version, or null if the path does not exist or its version differs.
    /// </summary>
    ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default);

    /// <summary>Deletes a path if its version is <paramref name="expectedVersion"/> (-1: any). False if absent or the version differs.</summary>
    ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default);

    /// <summary>Names (last path components) of the direct children of <paramref name="path"/>, sorted.</summary>
    ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Creates a node that exists as long as this store's session; false if the path exists.</summary>
    ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>Creates <paramref name="prefix"/> followed by a 10-digit number, larger than any before under that parent; returns the path.</summary>
    ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default);

    /// <summary>Reads a value and leaves a watch: the task completes at the node's next creation, change or deletion.</summary>
    ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Lists children and leaves a watch: the task completes when children are added or removed.</summary>
    ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Applies every operation, or none; false if a version or existence condition failed.</summary>
    ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default);

    /// <summary>Completes when the current session is lost (its ephemeral nodes are gone). Later calls use a new session.</summary>
    Task SessionLost { get; }

    /// <summary>Whether the store can be reached now (readiness); a store that is reconnecting answers false.</summary>
    bool IsConnected { get; }
}
