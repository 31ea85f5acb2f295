namespace Streams.Client.Tests.Fakes;

/// <summary>A test class with a fresh <see cref="FakeCluster"/> and a client of it per test.</summary>
public abstract class FakeClusterTest : IAsyncLifetime
{
    /// <summary>How long a test waits for an outcome before it fails.</summary>
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    protected FakeCluster Cluster { get; private set; } = null!;

    protected StreamsClient Client { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Cluster = await FakeCluster.StartAsync();
        Client = Cluster.CreateClient();
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Cluster.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>Waits until <paramref name="condition"/> holds: at most <see cref="Patience"/>, in steps of 20 ms.</summary>
    protected static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < Patience.TotalMilliseconds / 20 && !condition(); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(condition(), $"Timed out waiting until {what}.");
    }
}
