using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>
/// A metadata store for ownership tests: a <see cref="FileMetadataStore"/> in a temporary directory, with a session the
/// test can lose (<see cref="LoseSession"/>, as a ZooKeeper session expiring) and a gate that holds watched reads
/// of the assignment (<see cref="HoldWatchedReads"/>), so a test decides when a follower sees a change. Counts the
/// assignment's reads.
/// </summary>
internal sealed class SessionMetadataStore : IMetadataStore
{
    private readonly TempDirectory _directory = new("streams-ownership");
    private readonly FileMetadataStore _inner;
    private TaskCompletionSource _session = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _watchedReads;
    private int _reads;
    private int _watchedReadCount;

    public SessionMetadataStore() => _inner = FileMetadataStore.Open(_directory.Path);

    public Task SessionLost => Volatile.Read(ref _session).Task;

    public bool IsConnected => true;

    /// <summary>Plain reads (<see cref="GetAsync"/>) of the assignment so far.</summary>
    public int Reads => Volatile.Read(ref _reads);

    /// <summary>Watched reads (<see cref="GetAndWatchAsync"/>) of the assignment that have begun so far.</summary>
    public int WatchedReads => Volatile.Read(ref _watchedReadCount);

    /// <summary>Loses the session: <see cref="SessionLost"/> completes and later calls use a new one.</summary>
    public void LoseSession()
    {
        var lost = Interlocked.Exchange(ref _session, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        lost.TrySetResult();
    }

    /// <summary>Watched reads wait until <see cref="ReleaseWatchedReads"/>.</summary>
    public void HoldWatchedReads() => Volatile.Write(ref _watchedReads, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public void ReleaseWatchedReads() => Interlocked.Exchange(ref _watchedReads, null)?.TrySetResult();

    public ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        if (path == ClusterPaths.Assignment)
        {
            Interlocked.Increment(ref _reads);
        }

        return _inner.GetAsync(path, cancellationToken);
    }

    public async ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default)
    {
        if (path != ClusterPaths.Assignment)
        {
            return await _inner.GetAndWatchAsync(path, cancellationToken);
        }

        Interlocked.Increment(ref _watchedReadCount);
        if (Volatile.Read(ref _watchedReads) is { } held)
        {
            await held.Task.WaitAsync(cancellationToken);
        }

        return await _inner.GetAndWatchAsync(path, cancellationToken);
    }

    public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) => _inner.TryCreateAsync(path, data, cancellationToken);

    public ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default) =>
        _inner.TrySetAsync(path, data, expectedVersion, cancellationToken);

    public ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default) => _inner.TryDeleteAsync(path, expectedVersion, cancellationToken);

    public ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default) => _inner.GetChildrenAsync(path, cancellationToken);

    public ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        _inner.TryCreateEphemeralAsync(path, data, cancellationToken);

    public ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default) =>
        _inner.CreateSequentialAsync(prefix, data, ephemeral, cancellationToken);

    public ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default) =>
        _inner.GetChildrenAndWatchAsync(path, cancellationToken);

    public ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default) => _inner.TryCommitAsync(operations, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        ReleaseWatchedReads();
        await _inner.DisposeAsync();
        _directory.Dispose();
    }
}
