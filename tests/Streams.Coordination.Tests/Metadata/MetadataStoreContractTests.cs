using System.Text;
using Streams.Coordination.Metadata;

namespace Streams.Common.Server.Tests.Metadata;

/// <summary>What every metadata store must do; run against the embedded store and against a real ZooKeeper.</summary>
public abstract class MetadataStoreContractTests : IAsyncLifetime
{
    private readonly List<IMetadataStore> _stores = [];

    protected static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A store; calls after the first may return a second session on the same data (ZooKeeper) or the same store.</summary>
    private protected abstract Task<IMetadataStore> OpenAsync();

    /// <summary>A second, independent session on the same data, or null if the implementation has only one.</summary>
    private protected abstract Task<IMetadataStore?> OpenSecondSessionAsync();

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }

    private protected async Task<IMetadataStore> StoreAsync()
    {
        var store = await OpenAsync();
        _stores.Add(store);
        return store;
    }

    [Fact]
    public async Task Create_get_set_delete_with_versions()
    {
        var store = await StoreAsync();
        Assert.True(await store.TryCreateAsync("/a/b", Bytes("one")));
        Assert.False(await store.TryCreateAsync("/a/b", Bytes("again")));
        var value = await store.GetAsync("/a/b");
        Assert.Equal(("one", 0L), (Encoding.UTF8.GetString(value!.Value.Data), value.Value.Version));
        Assert.Equal(1, await store.TrySetAsync("/a/b", Bytes("two"), 0));
        Assert.Null(await store.TrySetAsync("/a/b", Bytes("stale"), 0));
        Assert.Equal(2, await store.TrySetAsync("/a/b", Bytes("any"), -1));
        Assert.Null(await store.TrySetAsync("/missing", Bytes("x"), -1));
        Assert.False(await store.TryDeleteAsync("/a/b", 1));
        Assert.True(await store.TryDeleteAsync("/a/b", 2));
        Assert.Null(await store.GetAsync("/a/b"));
        Assert.False(await store.TryDeleteAsync("/a/b"));
    }

    [Fact]
    public async Task Each_concurrent_set_returns_the_version_it_wrote()
    {
        const int Writers = 16;
        const int SetsPerWriter = 8;
        var store = await StoreAsync();
        await store.TryCreateAsync("/contended", Bytes("initial"));
        var results = await Task.WhenAll(Enumerable.Range(0, Writers).Select(writer => Task.Run(async () =>
        {
            var written = new List<(long Version, string Data)>();
            for (var i = 0; i < SetsPerWriter; i++)
            {
                var data = $"{writer}.{i}";
                written.Add(((await store.TrySetAsync("/contended", Bytes(data), -1))!.Value, data));
            }

            return written;
        })));

        // Every set moved the version by one, so each must have been told a version no other set was told.
        var all = results.SelectMany(r => r).ToList();
        Assert.Equal(Enumerable.Range(1, Writers * SetsPerWriter).Select(v => (long)v), all.Select(r => r.Version).Order());
        var final = (await store.GetAsync("/contended"))!.Value;
        Assert.Equal(all.Single(r => r.Version == final.Version).Data, Encoding.UTF8.GetString(final.Data));
    }

    [Fact]
    public async Task Children_are_direct_names_sorted_and_empty_parents_can_be_deleted()
    {
        var store = await StoreAsync();
        foreach (var path in new[] { "/s/b", "/s/a", "/s/a/deep", "/s/c/x" })
        {
            await store.TryCreateAsync(path, Bytes(path));
        }

        Assert.Equal(["a", "b", "c"], await store.GetChildrenAsync("/s"));
        Assert.Empty(await store.GetChildrenAsync("/nothing"));

        // A scope whose only children are empty placeholders (left after its streams were deleted) can go.
        await store.TryCreateAsync("/scope", Bytes("scope"));
        await store.TryCreateAsync("/scope/streams/st", Bytes("stream"));
        Assert.True(await store.TryDeleteAsync("/scope/streams/st"));
        Assert.True(await store.TryDeleteAsync("/scope"));
        Assert.Null(await store.GetAsync("/scope"));
    }

    [Fact]
    public async Task Sequential_names_increase_and_never_repeat()
    {
        var store = await StoreAsync();
        var first = await store.CreateSequentialAsync("/ids/id-", Bytes("1"));
        var second = await store.CreateSequentialAsync("/ids/id-", Bytes("2"));
        Assert.Matches(@"^/ids/id-\d{10}$", first);
        Assert.True(string.CompareOrdinal(first, second) < 0);
        Assert.True(await store.TryDeleteAsync(second));
        var third = await store.CreateSequentialAsync("/ids/id-", Bytes("3"));
        Assert.True(string.CompareOrdinal(second, third) < 0);
    }

    [Fact]
    public async Task Ephemeral_nodes_vanish_with_their_session()
    {
        var owner = await OpenAsync();
        Assert.True(await owner.TryCreateEphemeralAsync("/members/m1", Bytes("me")));
        Assert.False(await owner.TryCreateEphemeralAsync("/members/m1", Bytes("again")));
        var sequential = await owner.CreateSequentialAsync("/members/seq-", Bytes("s"), ephemeral: true);
        Assert.Equal(2, (await owner.GetChildrenAsync("/members")).Count);
        Assert.Equal(1, await owner.TrySetAsync("/members/m1", Bytes("updated"), 0));

        var observer = await OpenSecondSessionAsync();
        if (observer is not null)
        {
            _stores.Add(observer);
            var (children, changed) = await observer.GetChildrenAndWatchAsync("/members");
            Assert.Equal(2, children.Count);
            await owner.DisposeAsync();
            await changed.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Empty(await observer.GetChildrenAsync("/members"));
        }
        else
        {
            await owner.DisposeAsync();
            await owner.SessionLost.WaitAsync(TimeSpan.FromSeconds(1));
            var reopened = await StoreAsync();
            Assert.Null(await reopened.GetAsync("/members/m1"));
            Assert.Null(await reopened.GetAsync(sequential));
        }
    }

    [Fact]
    public async Task A_commit_that_deletes_an_ephemeral_node_and_creates_its_path_makes_it_persistent()
    {
        var owner = await OpenAsync();
        Assert.True(await owner.TryCreateEphemeralAsync("/swapped", Bytes("ephemeral")));
        Assert.True(await owner.TryCommitAsync([new MetadataOp.Delete("/swapped"), new MetadataOp.Create("/swapped", Bytes("persistent"))]));
        Assert.Equal(1, await owner.TrySetAsync("/swapped", Bytes("updated"), 0));
        await owner.DisposeAsync();

        // Neither the node nor its update goes with the session.
        var later = await StoreAsync();
        var value = await later.GetAsync("/swapped");
        Assert.Equal(("updated", 1L), (Encoding.UTF8.GetString(value!.Value.Data), value.Value.Version));
    }

    [Fact]
    public async Task Watches_fire_on_change_creation_and_children()
    {
        var store = await StoreAsync();
        var (missing, created) = await store.GetAndWatchAsync("/watched");
        Assert.Null(missing);
        await store.TryCreateAsync("/watched", Bytes("v0"));
        await created.WaitAsync(TimeSpan.FromSeconds(10));

        var (value, changed) = await store.GetAndWatchAsync("/watched");
        Assert.Equal(0, value!.Value.Version);
        Assert.False(changed.IsCompleted);
        await store.TrySetAsync("/watched", Bytes("v1"), 0);
        await changed.WaitAsync(TimeSpan.FromSeconds(10));

        var (children, childrenChanged) = await store.GetChildrenAndWatchAsync("/watched");
        Assert.Empty(children);
        await store.TryCreateAsync("/watched/kid", Bytes("k"));
        await childrenChanged.WaitAsync(TimeSpan.FromSeconds(10));

        var (_, deleted) = await store.GetAndWatchAsync("/watched/kid");
        await store.TryDeleteAsync("/watched/kid");
        await deleted.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Commits_apply_all_or_nothing()
    {
        var store = await StoreAsync();
        await store.TryCreateAsync("/log", Bytes("v0"));
        Assert.True(await store.TryCommitAsync(
        [
            new MetadataOp.Check("/log", 0),
            new MetadataOp.Set("/log", Bytes("v1"), 0),
            new MetadataOp.Create("/log/ledger-1", Bytes("l1")),
        ]));
        Assert.Equal(1, (await store.GetAsync("/log"))!.Value.Version);

        Assert.False(await store.TryCommitAsync(
        [
            new MetadataOp.Create("/log/ledger-2", Bytes("l2")),
            new MetadataOp.Delete("/log/ledger-1"),
            new MetadataOp.Set("/log", Bytes("stale"), 0),
        ]));
        Assert.Null(await store.GetAsync("/log/ledger-2"));
        Assert.NotNull(await store.GetAsync("/log/ledger-1"));
        Assert.Equal("v1", Encoding.UTF8.GetString((await store.GetAsync("/log"))!.Value.Data));

        Assert.False(await store.TryCommitAsync([new MetadataOp.Create("/log/ledger-1", Bytes("dup"))]));
        Assert.True(await store.TryCommitAsync([new MetadataOp.Delete("/log/ledger-1", 0), new MetadataOp.Set("/log", Bytes("v2"), 1)]));
    }
}
