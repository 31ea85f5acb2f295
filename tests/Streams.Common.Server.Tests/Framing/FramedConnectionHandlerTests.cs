using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Framing;
using Streams.Common.Server.Framing;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Server.Tests.Framing;

/// <summary>
/// The shared server loop of the raw carrier, with a small echo protocol: over in-memory pipes for its ordering and
/// error rules, and on a real Kestrel listener against the shared client connection.
/// </summary>
public sealed class FramedConnectionHandlerTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Frames_are_handled_one_at_a_time_in_arrival_order_and_answered()
    {
        var handler = new EchoHandler(new Lifetime());
        await using var link = Link.Start(handler);

        // The keep-alive holds the loop: the info behind it is not handed over until the keep-alive is done.
        await link.SendAsync(new DataRequest { KeepAlive = new KeepAlive { Nonce = 7 } });
        await link.SendAsync(Info(1, "a"));
        await handler.Held.Task.WaitAsync(TimeSpan.FromSeconds(5), Token);
        await Task.Delay(100, Token);
        Assert.Equal(["keep-alive 7"], handler.Seen);

        handler.Gate.SetResult();
        var replies = await link.ReadAsync(2);

        Assert.Equal(["keep-alive 7", "info 1"], handler.Seen);
        Assert.Equal(7, replies[0].KeepAlive.Nonce);
        Assert.Equal("a", replies[1].Info.Info.Segment);
    }

    [Fact]
    public async Task While_a_frame_holds_up_the_loop_the_server_sends_its_heartbeat_so_the_client_sees_it_alive()
    {
        var handler = new EchoHandler(new Lifetime()) { Beat = new DataReply { KeepAlive = new KeepAlive { Nonce = 0 } } };
        await using var link = Link.Start(handler);

        // Back-pressure: the held frame keeps the client's next frames (its own keep-alive probes) unread.
        await link.SendAsync(new DataRequest { KeepAlive = new KeepAlive { Nonce = 7 } });
        await handler.Held.Task.WaitAsync(TimeSpan.FromSeconds(5), Token);
        var beats = await link.ReadAsync(2);
        Assert.All(beats, b => Assert.Equal(0, b.KeepAlive.Nonce));

        handler.Gate.SetResult();
        await link.SendAsync(Info(1, "a"));
        // Heartbeats sent before the release may still be on their way, ahead of the answers.
        var answers = new List<DataReply>();
        for (var i = 0; i < 20 && answers.Count < 2; i++)
        {
            answers.AddRange((await link.ReadAsync(1)).Where(r => r.KeepAlive is not { Nonce: 0 }));
        }

        Assert.Equal(2, answers.Count);

        Assert.Equal(7, answers[0].KeepAlive.Nonce);
        Assert.Equal("a", answers[1].Info.Info.Segment);

        // Nothing holds the loop now: no more heartbeats.
        await link.SendAsync(Info(2, "b"));
        await Task.Delay(HeartbeatWindow, Token);
        await link.SendAsync(Info(3, "c"));
        var quiet = await link.ReadAsync(2);
        Assert.Equal(["b", "c"], quiet.Select(r => r.Info.Info.Segment));
    }

    /// <summary>Longer than two heartbeat intervals (500 ms).</summary>
    private static readonly TimeSpan HeartbeatWindow = TimeSpan.FromMilliseconds(1200);

    [Fact]
    public async Task When_the_client_finishes_sending_the_protocol_drains_and_every_queued_reply_goes_out()
    {
        var handler = new EchoHandler(new Lifetime()) { HoldKeepAlives = false };
        await using var link = Link.Start(handler);

        for (var i = 1; i <= 100; i++)
        {
            await link.SendAsync(Info(i, $"s{i}"));
        }

        await link.FinishAsync();
        var replies = await link.ReadToEndAsync();
        await link.Loop.WaitAsync(TimeSpan.FromSeconds(5), Token);

        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), replies.Select(r => r.Info.RequestId));
        Assert.Equal(1, handler.Drained);
        Assert.Equal(1, handler.Closed);
    }

    [Fact]
    public async Task A_malformed_frame_is_answered_with_invalid_argument_and_the_connection_closes()
    {
        var handler = new EchoHandler(new Lifetime());
        await using var link = Link.Start(handler);

        await link.SendRawAsync([0, 0, 0, 3, 0xFF, 0xFF, 0xFF]);
        var replies = await link.ReadToEndAsync();

        var error = Assert.Single(replies).Error;
        Assert.Equal((int)StatusCode.InvalidArgument, error.Code);
        Assert.Equal(0, error.RequestId);
        Assert.StartsWith("Malformed frame", error.Message, StringComparison.Ordinal);
        await link.Loop.WaitAsync(TimeSpan.FromSeconds(5), Token);
        Assert.Equal(0, handler.Drained);
        Assert.Equal(1, handler.Closed);
    }

    [Fact]
    public async Task An_oversized_frame_is_refused_as_soon_as_its_prefix_arrives()
    {
        var handler = new EchoHandler(new Lifetime());
        await using var link = Link.Start(handler);

        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, RawFraming.DefaultMaxFrameSize + 1u);
        await link.SendRawAsync(prefix);
        var replies = await link.ReadToEndAsync();

        Assert.Equal((int)StatusCode.ResourceExhausted, Assert.Single(replies).Error.Code);
    }

    [Fact]
    public async Task A_refusal_by_the_protocol_carries_its_status_and_ends_the_connection_after_earlier_replies()
    {
        var handler = new EchoHandler(new Lifetime()) { HoldKeepAlives = false };
        await using var link = Link.Start(handler);

        await link.SendAsync(Info(1, "a"));
        await link.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 2, Segment = "refuse" } });
        await link.SendAsync(Info(3, "never"));
        var replies = await link.ReadToEndAsync();

        Assert.Equal(2, replies.Count);
        Assert.Equal(1, replies[0].Info.RequestId);
        Assert.Equal((int)StatusCode.FailedPrecondition, replies[1].Error.Code);
        Assert.Equal("refused", replies[1].Error.Message);
    }

    [Fact]
    public async Task An_unexpected_failure_answers_internal_with_a_correlation_id_and_never_the_exception_message()
    {
        var handler = new EchoHandler(new Lifetime()) { HoldKeepAlives = false };
        await using var link = Link.Start(handler);

        await link.SendAsync(Info(1, "explode"));
        var replies = await link.ReadToEndAsync();

        var error = Assert.Single(replies).Error;
        Assert.Equal((int)StatusCode.Internal, error.Code);
        Assert.Matches("^Internal error [0-9a-f]{32}; the server's log has the details\\.$", error.Message);
        Assert.DoesNotContain("/var/secret", error.Message, StringComparison.Ordinal);
        await link.Loop.WaitAsync(TimeSpan.FromSeconds(5), Token);
        Assert.Equal(1, handler.Closed);
    }

    [Fact]
    public async Task Stopping_the_server_tells_clients_to_reconnect_when_the_protocol_has_a_shutdown_message()
    {
        var lifetime = new Lifetime();
        var handler = new EchoHandler(lifetime) { Shutdown = "shutting down; reconnect." };
        await using var link = Link.Start(handler);
        await link.SendAsync(Info(1, "a"));
        Assert.Single(await link.ReadAsync(1));

        await lifetime.StopAsync();
        var replies = await link.ReadToEndAsync();

        var error = Assert.Single(replies).Error;
        Assert.Equal((int)StatusCode.Unavailable, error.Code);
        Assert.Equal("shutting down; reconnect.", error.Message);
    }

    [Fact]
    public async Task Stopping_the_server_just_closes_connections_without_a_shutdown_message()
    {
        var lifetime = new Lifetime();
        var handler = new EchoHandler(lifetime);
        await using var link = Link.Start(handler);

        await lifetime.StopAsync();

        Assert.Empty(await link.ReadToEndAsync());
        await link.Loop.WaitAsync(TimeSpan.FromSeconds(5), Token);
        Assert.Equal(1, handler.Closed);
    }

    [Fact]
    public async Task The_shared_client_connection_talks_to_the_shared_server_loop_over_kestrel()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.UseConnectionHandler<EchoHandler>()));
        builder.Services.AddSingleton<EchoHandler>(s => new EchoHandler(s.GetRequiredService<IHostApplicationLifetime>()) { HoldKeepAlives = false });
        await using var app = builder.Build();
        await app.StartAsync(Token);
        var port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()).Port;

        var protocol = new ClientProtocol();
        var options = new FramedConnectionOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(100), KeepAliveTimeout = TimeSpan.FromSeconds(2) };
        await using (var connection = await FramedClientConnection.ConnectAsync("127.0.0.1", port, new DataRequest { Hello = new Hello() }, protocol, options, Token))
        {
            var replies = await Task.WhenAll(Enumerable.Range(1, 50).Select(id => connection.RequestAsync(id, Info(id, $"s{id}"), Token)));
            Assert.Equal(Enumerable.Range(1, 50).Select(i => $"s{i}"), replies.Select(r => ((SegmentInfo)r).Segment));

            await Task.Delay(500, Token);
            Assert.False(connection.IsClosed);
            Assert.True(protocol.KeepAlives >= 2, $"Only {protocol.KeepAlives} keep-alive answers.");
        }

        await app.StopAsync(Token);
    }

    private static DataRequest Info(long id, string segment) => new() { Info = new SegmentRequest { RequestId = id, Segment = segment } };

    /// <summary>Answers Info with the segment it names, keep-alives with their nonce (held at a gate if told), refuses a setup.</summary>
    private sealed class EchoHandler(IHostApplicationLifetime lifetime) : FramedConnectionHandler<FramedReplyChannel>(lifetime, NullLogger.Instance, "Test")
    {
        private int _drained;
        private int _closed;

        public bool HoldKeepAlives { get; init; } = true;

        public string? Shutdown { get; init; }

        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<string> Seen { get; } = [];

        public int Drained => Volatile.Read(ref _drained);

        public int Closed => Volatile.Read(ref _closed);

        protected override string? ShutdownMessage => Shutdown;

        public IMessage? Beat { get; init; }

        protected override IMessage? Heartbeat => Beat;

        protected override FramedReplyChannel OpenSession(FramedReplyChannel replies) => replies;

        protected override async ValueTask OnFrameAsync(FramedReplyChannel replies, ReadOnlySequence<byte> frame, CancellationToken aborted)
        {
            var request = DataRequest.Parser.ParseFrom(frame);
            switch (request.KindCase)
            {
                case DataRequest.KindOneofCase.Hello:
                    replies.Send(new DataReply { Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion } });
                    break;
                case DataRequest.KindOneofCase.KeepAlive:
                    Record($"keep-alive {request.KeepAlive.Nonce}");
                    if (HoldKeepAlives)
                    {
                        Held.TrySetResult();
                        await Gate.Task.WaitAsync(aborted);
                    }

                    replies.Send(new DataReply { KeepAlive = request.KeepAlive });
                    break;
                case DataRequest.KindOneofCase.Info when request.Info.Segment == "explode":
                    throw new InvalidOperationException("Could not open /var/secret/ledger-7.");
                case DataRequest.KindOneofCase.Info:
                    Record($"info {request.Info.RequestId}");
                    replies.Send(new DataReply { Info = new SegmentInfoReply { RequestId = request.Info.RequestId, Info = new SegmentInfo { Segment = request.Info.Segment } } });
                    break;
                case DataRequest.KindOneofCase.Setup:
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, "refused"));
            }
        }

        protected override ValueTask OnPeerFinishedAsync(FramedReplyChannel replies, CancellationToken aborted)
        {
            Interlocked.Increment(ref _drained);
            return ValueTask.CompletedTask;
        }

        protected override void CloseSession(FramedReplyChannel replies) => Interlocked.Increment(ref _closed);

        protected override IMessage ConnectionError(StatusCode code, string message) =>
            new DataReply { Error = new ErrorReply { RequestId = 0, Code = (int)code, Message = message } };

        private void Record(string what)
        {
            lock (Seen)
            {
                Seen.Add(what);
            }
        }
    }

    private sealed class ClientProtocol : IFramedClientProtocol
    {
        private int _keepAlives;

        public int KeepAlives => Volatile.Read(ref _keepAlives);

        public void OnFrame(FramedClientConnection connection, in ReadOnlySequence<byte> frame)
        {
            var reply = DataReply.Parser.ParseFrom(frame);
            switch (reply.KindCase)
            {
                case DataReply.KindOneofCase.Hello:
                    connection.OnHello(reply.Hello);
                    break;
                case DataReply.KindOneofCase.KeepAlive:
                    Interlocked.Increment(ref _keepAlives);
                    break;
                case DataReply.KindOneofCase.Info:
                    connection.Complete(reply.Info.RequestId, reply.Info.Info);
                    break;
            }
        }

        public void CheckHello(object reply)
        {
        }

        public IMessage CreateKeepAlive(long nonce) => new DataRequest { KeepAlive = new KeepAlive { Nonce = nonce } };

        public Exception Failure(FramedFailure failure, Exception cause) => new IOException(failure.ToString(), cause);

        public void OnClosed(Exception reason)
        {
        }
    }

    private sealed class Lifetime : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public Task StopAsync() => _stopping.CancelAsync();

        public void StopApplication() => _stopping.Cancel();
    }

    private sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    /// <summary>One connection to the handler over in-memory pipes, driven from the client's side.</summary>
    private sealed class Link : IAsyncDisposable
    {
        private readonly Pipe _toServer = new();
        private readonly Pipe _toClient = new();
        private readonly CancellationTokenSource _closed = new();
        private readonly List<DataReply> _received = [];
        private ReadOnlySequence<byte> _buffer;

        public Task Loop { get; private set; } = Task.CompletedTask;

        public static Link Start(ConnectionHandler handler)
        {
            var link = new Link();
            var context = new DefaultConnectionContext("test", new DuplexPipe(link._toServer.Reader, link._toClient.Writer), new DuplexPipe(link._toClient.Reader, link._toServer.Writer))
            {
                ConnectionClosed = link._closed.Token,
            };
            link.Loop = Task.Run(() => handler.OnConnectedAsync(context));
            return link;
        }

        public async Task SendAsync(DataRequest request)
        {
            RawFraming.WriteMessage(_toServer.Writer, request);
            await _toServer.Writer.FlushAsync(Token);
        }

        public async Task SendRawAsync(byte[] bytes) => await _toServer.Writer.WriteAsync(bytes, Token);

        public async Task FinishAsync() => await _toServer.Writer.CompleteAsync();

        /// <summary>The next <paramref name="count"/> replies.</summary>
        public async Task<List<DataReply>> ReadAsync(int count)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var start = _received.Count;
            while (_received.Count < start + count && await ReadMoreAsync(timeout.Token))
            {
            }

            return _received[start..];
        }

        /// <summary>Every reply until the server completes its output.</summary>
        public async Task<List<DataReply>> ReadToEndAsync()
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var start = _received.Count;
            while (await ReadMoreAsync(timeout.Token))
            {
            }

            return _received[start..];
        }

        public async ValueTask DisposeAsync()
        {
            await _closed.CancelAsync();
            await _toServer.Writer.CompleteAsync();
            await Loop.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
            _closed.Dispose();
        }

        private async Task<bool> ReadMoreAsync(CancellationToken cancellationToken)
        {
            var result = await _toClient.Reader.ReadAsync(cancellationToken);
            _buffer = result.Buffer;
            while (RawFraming.TryReadFrame(ref _buffer, int.MaxValue, out var frame))
            {
                _received.Add(DataReply.Parser.ParseFrom(frame));
            }

            _toClient.Reader.AdvanceTo(_buffer.Start, _buffer.End);
            return !result.IsCompleted;
        }
    }
}
