using Microsoft.Extensions.Logging;
using Streams.ZooKeeper;

namespace Streams.Coordination.Metadata;

/// <summary>
/// Metadata and coordination in ZooKeeper, under a root path (e.g. "/streams"). Versions are ZooKeeper's node
/// versions; ephemeral nodes belong to this store's session. When the session expires, <see cref="SessionLost"/>
/// completes and the store opens a new session for later calls; owners of ephemeral nodes re-create them.
/// Reads are retried across a lost connection; a write whose connection broke mid-flight fails (its outcome is
/// unknown), as with any ZooKeeper client.
/// </summary>
public sealed class ZooKeeperMetadataStore : IMetadataStore
{
    private readonly ZooKeeperOptions _options;
    private readonly string _root;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _closing = new();
    private ZooKeeperClient _client;
    private TaskCompletionSource _sessionLost = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ZooKeeperMetadataStore(ZooKeeperOptions options, string root, ZooKeeperClient client, ILogger logger)
    {
        _options = options;
        _root = root;
        _client = client;
        _logger = logger;
        WatchSession(client);
    }

    public Task SessionLost => Volatile.Read(ref _sessionLost).Task;

    public bool IsConnected => Client.State == ZooKeeperState.Connected;

    /// <summary>The ZooKeeper session currently used (for tests and diagnostics).</summary>
    public ZooKeeperClient Client => Volatile.Read(ref _client);

    /// <summary>Connects and makes sure the root exists.</summary>
    public static async Task<ZooKeeperMetadataStore> ConnectAsync(string connectionString, string root, TimeSpan sessionTimeout, ILogger logger, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(root);
        var options = new ZooKeeperOptions { ConnectionString = connectionString, SessionTimeout = sessionTimeout };
        var client = await ZooKeeperClient.ConnectAsync(options, logger, cancellationToken);
        try
        {
            await client.CreateRecursiveAsync(root, ReadOnlyMemory<byte>.Empty, CreateMode.Persistent, cancellationToken);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }

        return new ZooKeeperMetadataStore(options, root, client, logger);
    }

    public async ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await ReadAsync(async zk =>
        {
            try
            {
                var (data, stat) = await zk.GetDataAsync(Full(path), null, cancellationToken);
                return new VersionedValue(data, stat.Version);
            }
            catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NoNode)
            {
                return (VersionedValue?)null;
            }
        });
    }

    public async ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await ReadAsync(async zk =>
        {
            while (true)
            {
                var changed = NewWatch(out var watch);
                try
                {
                    var (data, stat) = await zk.GetDataAsync(Full(path), watch, cancellationToken);
                    return ((VersionedValue?)new VersionedValue(data, stat.Version), changed);
                }
                catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NoNode)
                {
                    // Watch for its creation; if it appeared in between, read again.
                    if (await zk.ExistsAsync(Full(path), watch, cancellationToken) is null)
                    {
                        return ((VersionedValue?)null, changed);
                    }
                }
            }
        });
    }

    public async ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await Client.CreateRecursiveAsync(Full(path), data, CreateMode.Persistent, cancellationToken);
    }

    public async ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        try
        {
            return (await Client.SetDataAsync(Full(path), data, (int)expectedVersion, cancellationToken)).Version;
        }
        catch (ZooKeeperException e) when (e.Error is ZooKeeperError.NoNode or ZooKeeperError.BadVersion)
        {
            return null;
        }
    }

    public async ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        var zk = Client;
        try
        {
            await zk.DeleteAsync(Full(path), (int)expectedVersion, cancellationToken);
            return true;
        }
        catch (ZooKeeperException e) when (e.Error is ZooKeeperError.NoNode or ZooKeeperError.BadVersion)
        {
            return false;
        }
        catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NotEmpty)
        {
            // Parents created on demand for children ("/scopes/s/streams") hold nothing: remove them with the node.
            if (!await DeleteEmptyDescendantsAsync(zk, Full(path), cancellationToken))
            {
                throw new InvalidOperationException($"{path} still has children holding data; delete them first.");
            }

            return await TryDeleteAsync(path, expectedVersion, cancellationToken);
        }
    }

    public async ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await ReadAsync(async zk =>
        {
            try
            {
                return (IReadOnlyList<string>)[.. (await zk.GetChildrenAsync(Full(path), null, cancellationToken)).Order(StringComparer.Ordinal)];
            }
            catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NoNode)
            {
                return [];
            }
        });
    }

    public async ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await ReadAsync(async zk =>
        {
            while (true)
            {
                var changed = NewWatch(out var watch);
                try
                {
                    var children = await zk.GetChildrenAsync(Full(path), watch, cancellationToken);
                    return ((IReadOnlyList<string>)[.. children.Order(StringComparer.Ordinal)], changed);
                }
                catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NoNode)
                {
                    if (await zk.ExistsAsync(Full(path), watch, cancellationToken) is null)
                    {
                        return ((IReadOnlyList<string>)[], changed);
                    }
                }
            }
        });
    }

    public async ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        return await Client.CreateRecursiveAsync(Full(path), data, CreateMode.Ephemeral, cancellationToken);
    }

    public async ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(prefix);
        var zk = Client;
        var parent = MetadataPaths.Parent(Full(prefix));
        if (await zk.ExistsAsync(parent, null, cancellationToken) is null)
        {
            await zk.CreateRecursiveAsync(parent, ReadOnlyMemory<byte>.Empty, CreateMode.Persistent, cancellationToken);
        }

        var created = await zk.CreateAsync(Full(prefix), data, ephemeral ? CreateMode.EphemeralSequential : CreateMode.PersistentSequential, cancellationToken);
        return Relative(created);
    }

    public async ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default)
    {
        var zk = Client;
        foreach (var create in operations.OfType<MetadataOp.Create>())
        {
            var parent = MetadataPaths.Parent(Full(create.Path));
            if (await zk.ExistsAsync(parent, null, cancellationToken) is null)
            {
                await zk.CreateRecursiveAsync(parent, ReadOnlyMemory<byte>.Empty, CreateMode.Persistent, cancellationToken);
            }
        }

        var ops = operations.Select(op => op switch
        {
            MetadataOp.Create c => (ZooKeeperOp)new ZooKeeperOp.Create(Full(c.Path), c.Data),
            MetadataOp.Set s => new ZooKeeperOp.SetData(Full(s.Path), s.Data, (int)s.ExpectedVersion),
            MetadataOp.Delete d => new ZooKeeperOp.Delete(Full(d.Path), (int)d.ExpectedVersion),
            MetadataOp.Check k => new ZooKeeperOp.Check(Full(k.Path), (int)k.ExpectedVersion),
            _ => throw new ArgumentException($"Unknown operation {op}."),
        }).ToList();
        return (await zk.MultiAsync(ops, cancellationToken)).Succeeded();
    }

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync();
        await Client.DisposeAsync();
        Volatile.Read(ref _sessionLost).TrySetResult();
        _closing.Dispose();
    }

    private string Full(string path) => path == "/" ? _root : _root + path;

    private string Relative(string path) => path == _root ? "/" : path[_root.Length..];

    private static Task NewWatch(out Action<WatchedEvent> watch)
    {
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        watch = _ => changed.TrySetResult();
        return changed.Task;
    }

    /// <summary>Runs a read, once more on a new session if the current one expired under it.</summary>
    private async Task<T> ReadAsync<T>(Func<ZooKeeperClient, Task<T>> read)
    {
        try
        {
            return await read(Client);
        }
        catch (ZooKeeperException e) when (e.Error is ZooKeeperError.ConnectionLoss or ZooKeeperError.SessionExpired && !_closing.IsCancellationRequested)
        {
            await Task.Delay(100);
            return await read(Client);
        }
    }

    private static async Task<bool> DeleteEmptyDescendantsAsync(ZooKeeperClient zk, string path, CancellationToken cancellationToken)
    {
        foreach (var child in await zk.GetChildrenAsync(path, null, cancellationToken))
        {
            var childPath = path + "/" + child;
            if (!await DeleteEmptyDescendantsAsync(zk, childPath, cancellationToken))
            {
                return false;
            }

            var (data, stat) = await zk.GetDataAsync(childPath, null, cancellationToken);
            if (data.Length > 0)
            {
                return false;
            }

            await zk.DeleteAsync(childPath, stat.Version, cancellationToken);
        }

        return true;
    }

    /// <summary>When the session expires: tell the owners, then open a new session for what comes next.</summary>
    private void WatchSession(ZooKeeperClient client) => _ = client.Expired.ContinueWith(async _ =>
    {
        var lost = Volatile.Read(ref _sessionLost);
        Volatile.Write(ref _sessionLost, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        lost.TrySetResult();
        _logger.LogWarning("The ZooKeeper session expired: ephemeral registrations are gone; opening a new session.");
        var delay = TimeSpan.FromMilliseconds(100);
        while (!_closing.IsCancellationRequested)
        {
            try
            {
                var fresh = await ZooKeeperClient.ConnectAsync(_options, _logger, _closing.Token);
                var old = Interlocked.Exchange(ref _client, fresh);
                await old.DisposeAsync();
                WatchSession(fresh);
                return;
            }
            catch (Exception e) when (e is ZooKeeperException or OperationCanceledException)
            {
                await Task.Delay(delay);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }, TaskScheduler.Default);
}
