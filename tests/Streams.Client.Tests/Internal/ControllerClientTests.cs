using Grpc.Core;
using Streams.Client.Serialization;
using Streams.Testing;

namespace Streams.Client.Tests.Internal;

/// <summary>
/// A client given several controllers uses whichever answers: a dead one in the list costs a failed connection
/// attempt, after which stream management, writers and readers carry on through the next.
/// </summary>
public sealed class ControllerClientTests
{
    [Fact]
    public async Task A_dead_controller_in_the_list_is_passed_over_by_management_writers_and_readers()
    {
        await using var server = await TestServer.StartAsync();
        var dead = $"http://127.0.0.1:{Ports.Free()}";
        await using var client = StreamsClient.Create(new StreamsClientOptions
        {
            ControllerUri = $"{dead}, {server.ControllerUri}",
            ControlTimeout = TimeSpan.FromSeconds(5),
        });

        Assert.True(await client.Streams.CreateScopeAsync("failover", TestContext.Current.CancellationToken));
        Assert.True(await client.Streams.CreateStreamAsync("failover", "events", StreamConfig.Fixed(2), TestContext.Current.CancellationToken));
        await using (var writer = await client.CreateWriterAsync("failover", "events", Serializers.Utf8, cancellationToken: TestContext.Current.CancellationToken))
        {
            await writer.WriteEventAsync("k", "through the second controller");
        }

        var read = new List<string>();
        await foreach (var e in client.CreateReader("failover", "events", Serializers.Utf8).ReadAllAsync(TestContext.Current.CancellationToken))
        {
            read.Add(e.Value);
        }

        Assert.Equal(["through the second controller"], read);
    }

    [Fact]
    public async Task When_every_controller_in_the_list_is_dead_the_call_fails_as_unavailable()
    {
        await using var client = StreamsClient.Create(new StreamsClientOptions
        {
            ControllerUri = $"http://127.0.0.1:{Ports.Free()},http://127.0.0.1:{Ports.Free()}",
            ControlTimeout = TimeSpan.FromSeconds(2),
        });
        var error = await Assert.ThrowsAsync<StreamsException>(() => client.Streams.ListScopesAsync(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public void A_list_with_an_address_that_is_not_http_is_refused_naming_it()
    {
        var error = Assert.Throws<ArgumentException>(() => StreamsClient.Create(new StreamsClientOptions { ControllerUri = "http://127.0.0.1:9090,ftp://elsewhere" }));
        Assert.Contains("'ftp://elsewhere'", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => StreamsClient.Create(new StreamsClientOptions { ControllerUri = " , " }));
    }
}
