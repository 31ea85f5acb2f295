using System.Text;
using Streams.Testing;

namespace Streams.ZooKeeper.Tests;

/// <summary>Our ZooKeeper client against a real ZooKeeper server.</summary>
public sealed class ZooKeeperClientTests : IAsyncLifetime
{
    private ZooKeeperServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await ZooKeeperServer.StartAsync();

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    private Task<ZooKeeperClient> ConnectAsync(string chroot = "", TimeSpan? timeout = null, long sessionId = 0, byte[]? password = null) =>
        ZooKeeperClient.ConnectAsync(new ZooKeeperOptions
        {
            ConnectionString = _server.ConnectionString + chroot,
            SessionTimeout = timeout ?? TimeSpan.FromSeconds(4),
            SessionId = sessionId,
            SessionPassword = password,
        });

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    private static async Task<T> WithinAsync<T>(Task<T> task, int seconds = 15) => await task.WaitAsync(TimeSpan.FromSeconds(seconds));

    [Fact]
    public async Task Nodes_are_created_read_updated_and_deleted_with_versions()
    {
        await using var zk = await ConnectAsync();
        Assert.Equal("/a", await zk.CreateAsync("/a", Bytes("one")));
        var (data, stat) = await zk.GetDataAsync("/a");
        Assert.Equal(("one", 0), (Encoding.UTF8.GetString(data), stat.Version));

        var updated = await zk.SetDataAsync("/a", Bytes("two"), version: 0);
        Assert.Equal(1, updated.Version);

        var stale = await Assert.ThrowsAsync<ZooKeeperException>(() => zk.SetDataAsync("/a", Bytes("stale"), version: 0));
        Assert.Equal(ZooKeeperError.BadVersion, stale.Error);
        Assert.Equal(ZooKeeperError.NodeExists, (await Assert.ThrowsAsync<ZooKeeperException>(() => zk.CreateAsync("/a", Bytes("x")))).Error);
        Assert.Equal(ZooKeeperError.NoNode, (await Assert.ThrowsAsync<ZooKeeperException>(() => zk.GetDataAsync("/missing"))).Error);
        Assert.Equal(ZooKeeperError.BadVersion, (await Assert.ThrowsAsync<ZooKeeperException>(() => zk.DeleteAsync("/a", 0))).Error);

        await zk.DeleteAsync("/a", 1);
        Assert.Null(await zk.ExistsAsync("/a"));
    }

    [Fact]
    public async Task Children_sequential_nodes_and_chroot()
    {
        await using (var root = await ConnectAsync())
        {
            await root.CreateAsync("/app", ReadOnlyMemory<byte>.Empty);
        }

        await using var zk = await ConnectAsync("/app");
        Assert.True(await zk.CreateRecursiveAsync("/x/y/z", Bytes("deep")));
        Assert.False(await zk.CreateRecursiveAsync("/x/y/z", Bytes("again")));
        var first = await zk.CreateAsync("/x/seq-", ReadOnlyMemory<byte>.Empty, CreateMode.PersistentSequential);
        var second = await zk.CreateAsync("/x/seq-", ReadOnlyMemory<byte>.Empty, CreateMode.PersistentSequential);
        Assert.Matches(@"^/x/seq-\d{10}$", first);
        Assert.True(string.CompareOrdinal(first, second) < 0);
        Assert.Equal(new[] { first[3..], second[3..], "y" }.Order(), (await zk.GetChildrenAsync("/x")).Order());

        await using var root2 = await ConnectAsync();
        Assert.NotNull(await root2.ExistsAsync("/app/x/y/z"));
    }

    [Fact]
    public async Task Watches_fire_once_for_data_children_and_creation()
    {
        await using var zk = await ConnectAsync();
        await zk.CreateAsync("/w", Bytes("v0"));
        var dataChanged = new TaskCompletionSource<WatchedEvent>();
        var childAdded = new TaskCompletionSource<WatchedEvent>();
        var created = new TaskCompletionSource<WatchedEvent>();
        await zk.GetDataAsync("/w", e => dataChanged.TrySetResult(e));
        await zk.GetChildrenAsync("/w", e => childAdded.TrySetResult(e));
        Assert.Null(await zk.ExistsAsync("/w2", e => created.TrySetResult(e)));

        await zk.SetDataAsync("/w", Bytes("v1"));
        await zk.CreateAsync("/w/child", ReadOnlyMemory<byte>.Empty);
        await zk.CreateAsync("/w2", ReadOnlyMemory<byte>.Empty);

        Assert.Equal(new WatchedEvent(WatchEventType.NodeDataChanged, ZooKeeperState.Connected, "/w"), await WithinAsync(dataChanged.Task));
        Assert.Equal(WatchEventType.NodeChildrenChanged, (await WithinAsync(childAdded.Task)).Type);
        Assert.Equal(WatchEventType.NodeCreated, (await WithinAsync(created.Task)).Type);

        // One shot: a second change without a new watch is not reported.
        var count = 0;
        await zk.GetDataAsync("/w", _ => Interlocked.Increment(ref count));
        await zk.SetDataAsync("/w", Bytes("v2"));
        await zk.SetDataAsync("/w", Bytes("v3"));
        await Task.Delay(300);
        Assert.Equal(1, count);
    }

    [Fact]
    public async Task An_ephemeral_node_vanishes_when_its_session_closes()
    {
        var owner = await ConnectAsync();
        await owner.CreateAsync("/leader", Bytes("me"), CreateMode.Ephemeral);
        await using var observer = await ConnectAsync();
        var deleted = new TaskCompletionSource<WatchedEvent>();
        Assert.NotNull(await observer.ExistsAsync("/leader", e => deleted.TrySetResult(e)));

        await owner.DisposeAsync();
        Assert.Equal(WatchEventType.NodeDeleted, (await WithinAsync(deleted.Task)).Type);
        Assert.Null(await observer.ExistsAsync("/leader"));
    }

    [Fact]
    public async Task Multi_applies_all_or_nothing()
    {
        await using var zk = await ConnectAsync();
        await zk.CreateAsync("/m", Bytes("v0"));
        var ok = await zk.MultiAsync([new ZooKeeperOp.Check("/m", 0), new ZooKeeperOp.SetData("/m", Bytes("v1"), 0), new ZooKeeperOp.Create("/m/a", Bytes("a"))]);
        Assert.True(ok.Succeeded());
        Assert.Equal("/m/a", ok[2].Path);
        Assert.Equal(1, ok[1].Stat!.Value.Version);

        // A failed compare-and-set rolls back the whole transaction.
        var failed = await zk.MultiAsync([new ZooKeeperOp.Create("/m/b", Bytes("b")), new ZooKeeperOp.SetData("/m", Bytes("stale"), 0)]);
        Assert.False(failed.Succeeded());
        Assert.Equal(ZooKeeperError.BadVersion, failed.FirstError());
        Assert.Equal(ZooKeeperError.BadVersion, failed[1].Error);
        Assert.Null(await zk.ExistsAsync("/m/b"));
        Assert.Equal("v1", Encoding.UTF8.GetString((await zk.GetDataAsync("/m")).Data));
    }

    [Fact]
    public async Task Session_expiry_is_surfaced_and_ephemerals_are_gone()
    {
        // The client reaches ZooKeeper through a proxy; cutting it longer than the session timeout partitions the
        // client away until the server expires its session.
        await using var proxy = new TcpProxy(_server.Port);
        var victim = await ConnectThroughAsync(proxy);
        await victim.CreateAsync("/owned", Bytes("x"), CreateMode.Ephemeral);
        var states = new List<ZooKeeperState>();
        victim.StateChanged += s => { lock (states) { states.Add(s); } };

        proxy.Block();
        await using (var observer = await ConnectAsync())
        {
            var gone = new TaskCompletionSource<WatchedEvent>();
            if (await observer.ExistsAsync("/owned", e => gone.TrySetResult(e)) is not null)
            {
                Assert.Equal(WatchEventType.NodeDeleted, (await WithinAsync(gone.Task)).Type);
            }
        }

        proxy.Unblock();
        await victim.Expired.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(ZooKeeperState.Expired, victim.State);
        Assert.Equal(ZooKeeperError.SessionExpired, (await Assert.ThrowsAsync<ZooKeeperException>(() => victim.ExistsAsync("/owned"))).Error);
        await victim.DisposeAsync();
        lock (states)
        {
            Assert.Contains(ZooKeeperState.Disconnected, states);
            Assert.Contains(ZooKeeperState.Expired, states);
        }
    }

    /// <summary>A client with a 2 s session that reaches ZooKeeper through <paramref name="proxy"/>, to be cut off.</summary>
    private static Task<ZooKeeperClient> ConnectThroughAsync(TcpProxy proxy) =>
        ZooKeeperClient.ConnectAsync(new ZooKeeperOptions
        {
            ConnectionString = $"127.0.0.1:{proxy.Port}",
            SessionTimeout = TimeSpan.FromSeconds(2),
            ConnectTimeout = TimeSpan.FromSeconds(1),
        });

    [Fact]
    public async Task A_client_cut_off_for_the_session_timeout_expires_its_session_without_waiting_to_be_told()
    {
        // The partition never heals: the client cannot learn from a server that its session expired, so it must
        // conclude so itself once no server answered for the whole session timeout.
        await using var proxy = new TcpProxy(_server.Port);
        var victim = await ConnectThroughAsync(proxy);
        await victim.CreateAsync("/cut-off", Bytes("x"), CreateMode.Ephemeral);
        var cut = System.Diagnostics.Stopwatch.StartNew();
        proxy.Block();
        await victim.Expired.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.InRange(cut.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(8));
        Assert.Equal(ZooKeeperState.Expired, victim.State);
        await victim.DisposeAsync();
    }

    [Fact]
    public async Task A_server_restart_mid_session_keeps_the_session_and_its_watches()
    {
        await using var zk = await ConnectAsync(timeout: TimeSpan.FromSeconds(10));
        var session = zk.SessionId;
        await zk.CreateAsync("/survivor", Bytes("e"), CreateMode.Ephemeral);
        await zk.CreateAsync("/watched", Bytes("v0"));
        var changed = new TaskCompletionSource<WatchedEvent>();
        await zk.GetDataAsync("/watched", e => changed.TrySetResult(e));

        await _server.StopAsync();
        var during = zk.ExistsAsync("/survivor");
        await Task.Delay(500);
        await _server.RestartAsync();

        Assert.NotNull(await WithinAsync(during, 20));
        Assert.Equal(session, zk.SessionId);
        Assert.Equal(ZooKeeperState.Connected, zk.State);
        await using var other = await ConnectAsync();
        await other.SetDataAsync("/watched", Bytes("v1"));
        Assert.Equal(WatchEventType.NodeDataChanged, (await WithinAsync(changed.Task)).Type);
    }

    [Fact]
    public async Task Unreachable_servers_in_the_connection_string_are_skipped()
    {
        await using var zk = await ZooKeeperClient.ConnectAsync(new ZooKeeperOptions
        {
            ConnectionString = $"127.0.0.1:{Ports.Free()},{_server.ConnectionString}",
            ConnectTimeout = TimeSpan.FromSeconds(1),
        });
        Assert.Equal(ZooKeeperState.Connected, zk.State);
        Assert.NotNull(await zk.ExistsAsync("/"));
    }

    [Fact]
    public async Task No_server_at_all_fails_with_connection_loss()
    {
        var error = await Assert.ThrowsAsync<ZooKeeperException>(() => ZooKeeperClient.ConnectAsync(new ZooKeeperOptions
        {
            ConnectionString = $"127.0.0.1:{Ports.Free()}",
            SessionTimeout = TimeSpan.FromSeconds(1),
            ConnectTimeout = TimeSpan.FromMilliseconds(500),
        }));
        Assert.Equal(ZooKeeperError.ConnectionLoss, error.Error);
    }
}
