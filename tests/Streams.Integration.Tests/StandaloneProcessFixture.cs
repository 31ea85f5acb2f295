using Streams.Client;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>One real `streams standalone` process shared by a test class.</summary>
public sealed class StandaloneProcessFixture : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("standalone-process");

    public StreamsProcess Server { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Server = await StreamsProcess.StartStandaloneAsync(_dir.Path);

    public StreamsClient CreateClient() => StreamsClient.Create(new StreamsClientOptions { ControllerUri = Server.ControllerUri, ReconnectTimeout = TimeSpan.FromSeconds(10) });

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
