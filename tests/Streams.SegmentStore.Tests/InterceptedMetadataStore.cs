using Streams.Coordination.Metadata;

namespace Streams.SegmentStore.Tests;

/// <summary>
/// A metadata store that passes everything on, except that a test may take over the compare-and-sets of one path:
/// hold them, run them late, or fail them after they took effect (a lost answer).
/// </summary>
internal sealed class InterceptedMetadataStore(IMetadataStore inner) : IMetadataStore
{
    /// <summary>The path whose sets go through <see cref="OnSet"/>.</summary>
    public string? Path { get; set; }

    /// <summary>Runs instead of a set of <see cref="Path"/>; it is given the real set to run when it wants.</summary>
    public Func<Func<ValueTask<long?>>, ValueTask<long?>>? OnSet { get; set; }

    public Task SessionLost => inner.SessionLost;

    public bool IsConnected => inner.IsConnected;

    public ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default) =>
        path == Path && OnSet is { } onSet
            ? onSet(() => inner.TrySetAsync(path, data, expectedVersion, cancellationToken))
            : inner.TrySetAsync(path, data, expectedVersion, cancellationToken);

    public ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default) => inner.GetAsync(path, cancellationToken);

    public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        inner.TryCreateAsync(path, data, cancellationToken);

    public ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default) =>
        inner.TryDeleteAsync(path, expectedVersion, cancellationToken);

    public ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default) => inner.GetChildrenAsync(path, cancellationToken);

    public ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        inner.TryCreateEphemeralAsync(path, data, cancellationToken);

    public ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default) =>
        inner.CreateSequentialAsync(prefix, data, ephemeral, cancellationToken);

    public ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default) =>
        inner.GetAndWatchAsync(path, cancellationToken);

    public ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default) =>
        inner.GetChildrenAndWatchAsync(path, cancellationToken);

    public ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default) =>
        inner.TryCommitAsync(operations, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
