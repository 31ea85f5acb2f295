using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Integration.Tests;

/// <summary>What the tests of server processes that write keyed loads share: a client, and the stream they write.</summary>
internal static class ProcessTestClients
{
    /// <summary>A client of a standalone process that the test kills and restarts: it gives up on a dead server quickly.</summary>
    public static StreamsClient Create(string controllerUri) =>
        StreamsClient.Create(new StreamsClientOptions { ControllerUri = controllerUri, ReconnectTimeout = TimeSpan.FromSeconds(3), ControlTimeout = TimeSpan.FromSeconds(5) });

    /// <summary>
    /// A client of a cluster whose processes the test kills or freezes: it notices a silent connection within seconds
    /// (1 s keep-alives, 3 s timeout) and keeps reconnecting for 30 s. <paramref name="controllerUri"/> may list several
    /// controllers, comma-separated.
    /// </summary>
    public static StreamsClient ForFaults(string controllerUri) =>
        StreamsClient.Create(new StreamsClientOptions
        {
            ControllerUri = controllerUri,
            ReconnectTimeout = TimeSpan.FromSeconds(30),
            ControlTimeout = TimeSpan.FromSeconds(10),
            KeepAliveInterval = TimeSpan.FromSeconds(1),
            KeepAliveTimeout = TimeSpan.FromSeconds(3),
        });

    /// <summary>
    /// Creates <paramref name="scope"/> and its stream "events" of <paramref name="segments"/> fixed segments, and a
    /// writer to it that stores routing keys (so a read can check per-key order).
    /// </summary>
    public static async Task<EventStreamWriter<string>> CreateStreamAndWriterAsync(StreamsClient client, string scope, int segments)
    {
        await client.Streams.CreateScopeAsync(scope);
        await client.Streams.CreateStreamAsync(scope, "events", StreamConfig.Fixed(segments));
        return await client.CreateWriterAsync(scope, "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true });
    }
}
