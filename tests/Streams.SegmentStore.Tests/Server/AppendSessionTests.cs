using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Client;
using Streams.Common.Wire;
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
        using var raw = await RawLink.ConnectAsync(server.DataPort);
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
        using var raw = await RawLink.ConnectAsync(server.DataPort);

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

    private static DataRequest Block(long requestId, long eventNumber)
    {
        var payload = "event"u8;
        var frame = new byte[EventFraming.FrameSize(payload.Length)];
        EventFraming.Write(frame, payload, default, storeKey: false);
        return new DataRequest { Block = new AppendBlock { RequestId = requestId, LastEventNumber = eventNumber, EventCount = 1, Data = ByteString.CopyFrom(frame) } };
    }

    /// <summary>A hand-written raw client: hello, then frames out and replies in.</summary>
    private sealed class RawLink : IDisposable
    {
        private readonly Socket _socket = new(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

        public static async Task<RawLink> ConnectAsync(int port)
        {
            var link = new RawLink();
            await link._socket.ConnectAsync("127.0.0.1", port, Token);
            await link.SendAsync(new DataRequest { Hello = new Hello { ProtocolVersion = RawFraming.ProtocolVersion, Client = "test" } });
            var hello = (await link.ReceiveAsync(1))[0];
            Assert.Equal(DataReply.KindOneofCase.Hello, hello.KindCase);
            return link;
        }

        public async Task SendAsync(DataRequest request)
        {
            var body = request.ToByteArray();
            var frame = new byte[4 + body.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
            body.CopyTo(frame, 4);
            await _socket.SendAsync(frame, SocketFlags.None, Token);
        }

        public async Task<List<DataReply>> ReceiveAsync(int count)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(20));
            var replies = new List<DataReply>(count);
            var header = new byte[4];
            while (replies.Count < count)
            {
                await ReadExactlyAsync(header, timeout.Token);
                var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
                await ReadExactlyAsync(body, timeout.Token);
                replies.Add(DataReply.Parser.ParseFrom(body));
            }

            return replies;
        }

        public void Dispose() => _socket.Dispose();

        private async Task ReadExactlyAsync(byte[] buffer, CancellationToken cancellationToken)
        {
            for (var read = 0; read < buffer.Length;)
            {
                var n = await _socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken);
                read += n > 0 ? n : throw new EndOfStreamException("The server closed the connection.");
            }
        }
    }
}
