namespace Streams.Common.Server.Metadata;

/// <summary>A value and the version it was read at. Versions start at 0 on creation and grow by 1 per update.</summary>
internal readonly record struct VersionedValue(byte[] Data, long Version);

/// <summary>
/// Versioned, durable metadata under slash-separated paths ("/scopes/a/streams/b"), in the manner of ZooKeeper.
/// Every mutation is durable when it completes. Conditional updates compare versions, so concurrent writers
/// (several controllers) never overwrite each other blindly. A parent need not exist before its children;
/// children are listed by name.
/// Expected conflicts are results (null/false), not exceptions.
/// </summary>
internal interface IMetadataStore : IAsyncDisposable
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
}
