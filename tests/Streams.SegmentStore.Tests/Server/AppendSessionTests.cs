using Google.Protobuf;
using Streams.Client;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Server;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>What one append session remembers, seen from a raw client of a real standalone server in this process.</summary>
public sealed class AppendSessionTests
{
    private const string Segment = "sessions/bounded/0.#epoch.0";

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_writer_that_sets_up_again_replaces_its_earlier_request_id()
    {
        await using var server = await StartAsync();
        using var raw = await ConnectAsync(server.DataPort);
        var writer = ByteString.CopyFrom(Guid.NewGuid().ToByteArray());

        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 1, WriterId = writer, Segment = Segment } });
        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 2, WriterId = writer, Segment = Segment } });
        await raw.SendAsync(Block(1, 0));
        await raw.SendAsync(Block(2, 0));

        var replies = await raw.ReceiveAsync(4);
        Assert.Equal([1L, 2L], replies.Where(r => r.KindCase == DataReply.KindOneofCase.Setup).Select(r => r.Setup.RequestId).Order());
        var refused = Assert.Single(replies, r => r.KindCase == DataReply.KindOneofCase.Rejected).Rejected;
        Assert.Equal((1L, AppendError.NotSetUp), (refused.RequestId, refused.Error));
        Assert.Equal(2, Assert.Single(replies, r => r.KindCase == DataReply.KindOneofCase.Appended).Appended.RequestId);
    }

    [Fact]
    public async Task Beyond_its_bound_a_session_forgets_the_registration_used_longest_ago()
    {
        await using var server = await StartAsync();
        using var raw = await ConnectAsync(server.DataPort);

        // Request id 1 is set up first and never used again; id 2 is set up next and kept busy.
        for (var id = 1; id <= AppendSession.MaxRegistrations + 1; id++)
        {
            await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = id, WriterId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Segment = Segment } });
            if (id == 2)
            {
                await raw.SendAsync(Block(2, 0));
            }
        }

        var replies = await raw.ReceiveAsync(AppendSession.MaxRegistrations + 2);
        Assert.All(replies, r => Assert.NotEqual(DataReply.KindOneofCase.Rejected, r.KindCase));

        await raw.SendAsync(Block(2, 1));
        await raw.SendAsync(Block(1, 0));
        // The refusal comes at once, the acknowledgement once the block is durable: in either order.
        var after = await raw.ReceiveAsync(2);
        Assert.Equal(2, Assert.Single(after, r => r.KindCase == DataReply.KindOneofCase.Appended).Appended.RequestId);
        var refused = Assert.Single(after, r => r.KindCase == DataReply.KindOneofCase.Rejected).Rejected;
        Assert.Equal((1L, AppendError.NotSetUp), (refused.RequestId, refused.Error));
    }

    private static async Task<TestServer> StartAsync()
    {
        var server = await TestServer.StartAsync();
        await using var client = server.CreateClient();
        await client.Streams.CreateScopeAsync("sessions", Token);
        await client.Streams.CreateStreamAsync("sessions", "bounded", StreamConfig.Fixed(1), Token);
        return server;
    }

    private static DataRequest Block(long requestId, long eventNumber) =>
        new() { Block = new AppendBlock { RequestId = requestId, LastEventNumber = eventNumber, EventCount = 1, Data = ByteString.CopyFrom(RawProtocolClient.Event("event")) } };

    /// <summary>A hand-written raw client past its hello: frames out and replies in.</summary>
    private static async Task<RawProtocolClient> ConnectAsync(int port)
    {
        var raw = await RawProtocolClient.ConnectAsync(port, cancellationToken: Token);
        await raw.SendHelloAsync("test", Token);
        Assert.Equal(DataReply.KindOneofCase.Hello, (await raw.ReceiveAsync(1, Token))[0].KindCase);
        return raw;
    }
}
