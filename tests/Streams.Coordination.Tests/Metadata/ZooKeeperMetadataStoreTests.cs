using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Testing;
using Streams.ZooKeeper;

namespace Streams.Common.Server.Tests.Metadata;

public sealed class ZooKeeperMetadataStoreTests : MetadataStoreContractTests
{
    private ZooKeeperServer _server = null!;

    public override async ValueTask InitializeAsync() => _server = await ZooKeeperServer.StartAsync();

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _server.DisposeAsync();
    }

    private protected override async Task<IMetadataStore> OpenAsync() =>
        await ZooKeeperMetadataStore.ConnectAsync(_server.ConnectionString, "/streams", TimeSpan.FromSeconds(4), NullLogger.Instance);

    private protected override async Task<IMetadataStore?> OpenSecondSessionAsync() => await OpenAsync();

    [Fact]
    public async Task After_session_expiry_owners_are_told_and_the_store_carries_on()
    {
        // Partition the store from ZooKeeper (through a proxy) until the server expires its session.
        await using var proxy = new TcpProxy(_server.Port);
        var store = await ZooKeeperMetadataStore.ConnectAsync($"127.0.0.1:{proxy.Port}", "/streams", TimeSpan.FromSeconds(2), NullLogger.Instance);
        try
        {
            Assert.True(await store.TryCreateEphemeralAsync("/registered", Bytes("me")));
            await store.TryCreateAsync("/durable", Bytes("kept"));
            var lost = store.SessionLost;

            proxy.Block();
            var observer = await StoreAsync();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (await observer.GetAsync("/registered") is not null)
            {
                Assert.True(DateTime.UtcNow < deadline, "The ephemeral node outlived the session timeout.");
                await Task.Delay(100);
            }

            proxy.Unblock();
            await lost.WaitAsync(TimeSpan.FromSeconds(20));

            // A new session serves the store from now on: data is intact, ephemerals can be re-created.
            deadline = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                try
                {
                    Assert.NotNull(await store.GetAsync("/durable"));
                    break;
                }
                catch (ZooKeeperException) when (DateTime.UtcNow < deadline)
                {
                    await Task.Delay(100);
                }
            }

            Assert.True(await store.TryCreateEphemeralAsync("/registered", Bytes("again")));
            Assert.False(store.SessionLost.IsCompleted);
        }
        finally
        {
            await store.DisposeAsync();
        }
    }
}
