using Streams.Coordination.Metadata;

namespace Streams.Controller.Tests.Streams;

/// <summary>
/// A metadata store that fails one update on purpose, as a controller crashing there would: the chosen
/// <see cref="IMetadataStore.TrySetAsync"/> (counted from <see cref="CrashAtSet"/>'s arming) throws either before it
/// writes or after it wrote (the write lands, the caller never hears of it).
/// </summary>
internal sealed class CrashingMetadataStore(IMetadataStore inner) : IMetadataStore
{
    private int _sets;
    private int _crashAt;
    private bool _afterWrite;

    /// <summary>Makes the <paramref name="n"/>th next update fail, before or after it is written.</summary>
    public void CrashAtSet(int n, bool afterWrite)
    {
        _sets = 0;
        _crashAt = n;
        _afterWrite = afterWrite;
    }

    public async ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default)
    {
        var crash = ++_sets == _crashAt;
        if (crash && !_afterWrite)
        {
            throw new IOException($"crash before update {_sets}");
        }

        var result = await inner.TrySetAsync(path, data, expectedVersion, cancellationToken);
        return crash ? throw new IOException($"crash after update {_sets}") : result;
    }

    public ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default) => inner.GetAsync(path, cancellationToken);

    public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) => inner.TryCreateAsync(path, data, cancellationToken);

    public ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default) => inner.TryDeleteAsync(path, expectedVersion, cancellationToken);

    public ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default) => inner.GetChildrenAsync(path, cancellationToken);

    public ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) => inner.TryCreateEphemeralAsync(path, data, cancellationToken);

    public ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default) => inner.CreateSequentialAsync(prefix, data, ephemeral, cancellationToken);

    public ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default) => inner.GetAndWatchAsync(path, cancellationToken);

    public ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default) => inner.GetChildrenAndWatchAsync(path, cancellationToken);

    public ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default) => inner.TryCommitAsync(operations, cancellationToken);

    public Task SessionLost => inner.SessionLost;

    public bool IsConnected => inner.IsConnected;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
