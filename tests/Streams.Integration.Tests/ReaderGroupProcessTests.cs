using System.Globalization;
using System.Text.Json;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using Streams.Testing;
using ReaderGroupsClient = Streams.Contracts.Controller.ReaderGroups.ReaderGroupsClient;

namespace Streams.Integration.Tests;

/// <summary>
/// Reader groups on a real <c>streams standalone</c> process, read by readers in another language: grpc-js readers
/// (tests/interop/group-reader.js, written from docs/wire-protocol.md and the .proto files alone) share a stream's
/// segments as the controller assigns them, and every event is read exactly once.
/// </summary>
public sealed class ReaderGroupProcessTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const string Script = "group-reader.js";

    [Fact]
    public async Task Two_grpcjs_readers_in_one_group_share_the_segments_and_read_every_event_exactly_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg", ct);
        await client.Streams.CreateStreamAsync("rg", "events", StreamConfig.Fixed(4), ct);
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        var created = await groups.CreateReaderGroupAsync(new CreateReaderGroupRequest
        {
            Scope = "rg", Group = "billing",
            Config = new ReaderGroupConfig { Streams = { new ReaderGroupStream { Scope = "rg", Stream = "events" } }, HeartbeatIntervalMs = 1000, SessionTimeoutMs = 10_000 },
        }, cancellationToken: ct);
        Assert.True(created.Created);

        // Both readers join first; the stream is written and sealed while they read, so each follows its segments' tails.
        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var readers = new[] { "js-a", "js-b" }.Select(id => Node.RunJsonAsync(Script, port, "rg", "billing", id, "50000")).ToList();
        ReaderGroupInfo described = null!;
        for (var i = 0; i < 200; i++)
        {
            described = await groups.DescribeReaderGroupAsync(new ReaderGroupRef { Scope = "rg", Group = "billing" }, cancellationToken: ct);
            if (described.Members.Count == 2 && described.Members.All(m => m.SegmentIds.Count == 2))
            {
                break;
            }

            await Task.Delay(100, ct);
        }

        Assert.True(described.Members.Count == 2 && described.Members.All(m => m.SegmentIds.Count == 2),
            $"The readers did not come to own two segments each within 20 s: {described}");

        const int Events = 3000;
        await using (var writer = await client.CreateWriterAsync("rg", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            await Task.WhenAll(Enumerable.Range(0, Events).Select(i => writer.WriteEventAsync("k" + (i % 32), $"k{i % 32}:{i}", ct)));
        }

        await client.Streams.SealStreamAsync("rg", "events", ct);
        var results = await Task.WhenAll(readers);

        var read = results.SelectMany(r => r.GetProperty("events").EnumerateArray().Select(e => (
            Segment: e.GetProperty("segment").GetString()!, Offset: e.GetProperty("offset").GetInt64(),
            Key: e.GetProperty("key").GetString()!, Value: e.GetProperty("payload").GetString()!))).ToList();
        Assert.All(results, r => Assert.True(r.GetProperty("ended").GetBoolean(), "A reader stopped before EndOfGroup."));
        Assert.All(results, r => Assert.NotEmpty(r.GetProperty("events").EnumerateArray()));
        Assert.Equal(Enumerable.Range(0, Events), read.Select(e => int.Parse(e.Value.Split(':')[1], CultureInfo.InvariantCulture)).Order());
        Assert.Equal(read.Count, read.Select(e => (e.Segment, e.Offset)).Distinct().Count());

        // Each key's events, in the order of their positions, are in the order written.
        foreach (var key in read.GroupBy(e => e.Key))
        {
            var order = key.OrderBy(e => e.Offset).Select(e => int.Parse(e.Value.Split(':')[1], CultureInfo.InvariantCulture)).ToList();
            Assert.Single(key.Select(e => e.Segment).Distinct());
            Assert.Equal(order.Order(), order);
        }

        var ended = await groups.DescribeReaderGroupAsync(new ReaderGroupRef { Scope = "rg", Group = "billing" }, cancellationToken: ct);
        Assert.True(ended.Ended, $"The group did not end: {ended}");
        Assert.Empty(ended.Members);
        Assert.Equal(0, ended.UnreadBytes);
        TestContext.Current.TestOutputHelper?.WriteLine(JsonSerializer.Serialize(results.Select(r => new
        {
            events = r.GetProperty("events").GetArrayLength(), assigned = r.GetProperty("assigned").GetArrayLength(), revoked = r.GetProperty("revoked").GetArrayLength(),
        })));
    }
}
