using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Streams.Common.Framing;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Tests.Framing;

/// <summary>
/// The shared client end of the raw carrier against a scripted peer on a real loopback socket, speaking the segment
/// store's messages through a minimal protocol.
/// </summary>
public sealed class FramedClientConnectionTests
{
    private static readonly FramedConnectionOptions NoKeepAlives = new() { PeerName = "peer", ConnectTimeout = TimeSpan.FromSeconds(5), KeepAliveInterval = Timeout.InfiniteTimeSpan };

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Replies_complete_their_own_requests_whatever_order_they_come_in()
    {
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            var requests = new List<DataRequest> { await p.ReadAsync(), await p.ReadAsync(), await p.ReadAsync() };
            for (var i = requests.Count - 1; i >= 0; i--)
            {
                await p.SendAsync(InfoReply(requests[i].Info.RequestId, requests[i].Info.Segment));
            }

            await p.WaitForEndAsync();
        });
        var protocol = new TestProtocol();
        await using var connection = await ConnectAsync(peer, protocol, NoKeepAlives);

        var requests = Enumerable.Range(1, 3).Select(id => connection.RequestAsync(id, InfoRequest(id, $"segment-{id}"), Token)).ToList();
        var replies = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(10), Token);

        Assert.Equal(["segment-1", "segment-2", "segment-3"], replies.Select(r => ((SegmentInfo)r).Segment));
        Assert.False(connection.IsClosed);
        Assert.Equal(0, protocol.ClosedCount);
    }

    [Fact]
    public async Task Frames_from_many_concurrent_writers_arrive_whole_and_each_writers_in_its_order()
    {
        const int Writers = 16, PerWriter = 300;
        var received = new List<DataRequest>();
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            for (var i = 0; i < Writers * PerWriter; i++)
            {
                var request = await p.ReadAsync();
                lock (received)
                {
                    received.Add(request);
                }
            }

            await p.WaitForEndAsync();
        });
        await using var connection = await ConnectAsync(peer, new TestProtocol(), NoKeepAlives);

        // Frames of different sizes, so a frame cut or interleaved with another does not parse.
        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                await connection.WriteAsync(InfoRequest((w * 1000) + i, new string((char)('a' + w), 1 + (i * 7 % 500))), Token);
            }
        }, Token));
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(30), Token);
        await WaitUntilAsync(() => { lock (received) { return received.Count == Writers * PerWriter; } });

        lock (received)
        {
            Assert.Equal(Writers * PerWriter, received.Count);
            foreach (var group in received.GroupBy(r => r.Info.RequestId / 1000))
            {
                Assert.Equal(Enumerable.Range(0, PerWriter).Select(i => (group.Key * 1000) + i), group.Select(r => r.Info.RequestId));
                Assert.All(group, r => Assert.Equal(new string((char)('a' + group.Key), 1 + ((int)(r.Info.RequestId % 1000) * 7 % 500)), r.Info.Segment));
            }
        }
    }

    [Fact]
    public async Task A_write_cancelled_while_it_waits_behind_a_stuck_flush_is_never_sent()
    {
        var reading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new List<DataRequest>();
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            await reading.Task;
            while (await p.TryReadAsync() is { } request)
            {
                lock (received)
                {
                    received.Add(request);
                }
            }
        });
        await using var connection = await ConnectAsync(peer, new TestProtocol(), NoKeepAlives);

        // 64 MiB that the peer does not read: the flush waits for room in the socket buffers.
        var stuck = connection.WriteAsync(InfoRequest(1, new string('x', 64 * 1024 * 1024)), Token).AsTask();
        await Task.Delay(200, Token);
        Assert.False(stuck.IsCompleted);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var cancelled = connection.WriteAsync(InfoRequest(2, "cancelled"), cancel.Token).AsTask();
        var kept = connection.WriteAsync(InfoRequest(3, "kept"), Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10), Token));

        reading.SetResult();
        await Task.WhenAll(stuck, kept).WaitAsync(TimeSpan.FromSeconds(30), Token);
        await WaitUntilAsync(() => { lock (received) { return received.Count >= 2; } });
        await Task.Delay(200, Token);
        lock (received)
        {
            Assert.Equal([1L, 3L], received.Select(r => r.Info.RequestId));
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 300 && !condition(); i++)
        {
            await Task.Delay(100, Token);
        }
    }

    [Fact]
    public async Task When_the_peer_drops_the_connection_every_pending_request_fails_and_the_reconnect_hook_runs_once()
    {
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            for (var i = 0; i < 3; i++)
            {
                await p.ReadAsync();
            }

            received.SetResult();
            p.Drop();
        });
        var protocol = new TestProtocol();
        await using var connection = await ConnectAsync(peer, protocol, NoKeepAlives);

        var requests = Enumerable.Range(1, 3).Select(id => connection.RequestAsync(id, InfoRequest(id, "s"), Token)).ToList();
        await received.Task.WaitAsync(TimeSpan.FromSeconds(10), Token);

        foreach (var request in requests)
        {
            var error = await Assert.ThrowsAsync<TestFailure>(() => request.WaitAsync(TimeSpan.FromSeconds(10), Token));
            Assert.Equal(FramedFailure.Lost, error.Failure);
        }

        Assert.True(connection.IsClosed);
        await ClosedOnceAsync(protocol);
        Assert.Same(connection.ClosedReason, protocol.ClosedReason);

        // A closed connection stays closed: later writes fail at once.
        var write = await Assert.ThrowsAsync<TestFailure>(async () => await connection.WriteAsync(InfoRequest(9, "s"), Token));
        Assert.Equal(FramedFailure.Closed, write.Failure);
    }

    /// <summary>
    /// The protocol's close hook ran exactly once. A closing connection fails its pending requests before it runs the
    /// hook, so a test woken by a failed request may look a moment too early: it waits for the hook (bounded).
    /// </summary>
    private static async Task ClosedOnceAsync(TestProtocol protocol)
    {
        for (var i = 0; i < 500 && protocol.ClosedCount == 0; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(1, protocol.ClosedCount);
    }

    [Fact]
    public async Task A_peer_that_stops_reading_and_answering_is_detected_by_keep_alives()
    {
        // After the hello the peer never reads again: the socket stays open, probes pile up in its receive buffer.
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            await p.WaitForEndAsync(read: false);
        });
        var protocol = new TestProtocol();
        var options = NoKeepAlives with { KeepAliveInterval = TimeSpan.FromMilliseconds(100), KeepAliveTimeout = TimeSpan.FromMilliseconds(600) };
        await using var connection = await ConnectAsync(peer, protocol, options);
        var started = DateTime.UtcNow;

        var request = connection.RequestAsync(1, InfoRequest(1, "s"), Token);
        var error = await Assert.ThrowsAsync<TestFailure>(() => request.WaitAsync(TimeSpan.FromSeconds(10), Token));

        Assert.Equal(FramedFailure.Lost, error.Failure);
        var reason = Assert.IsType<TestFailure>(connection.ClosedReason);
        Assert.Equal(FramedFailure.Silent, reason.Failure);
        Assert.Contains("keep-alive timeout", reason.Message, StringComparison.Ordinal);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(5));
        await ClosedOnceAsync(protocol);
    }

    [Fact]
    public async Task A_peer_that_answers_keep_alives_stays_connected()
    {
        var probes = 0;
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            while (await p.TryReadAsync() is { } request)
            {
                if (request.KindCase == DataRequest.KindOneofCase.KeepAlive)
                {
                    Interlocked.Increment(ref probes);
                    await p.SendAsync(new DataReply { KeepAlive = request.KeepAlive });
                }
            }
        });
        var options = NoKeepAlives with { KeepAliveInterval = TimeSpan.FromMilliseconds(100), KeepAliveTimeout = TimeSpan.FromMilliseconds(600) };
        await using var connection = await ConnectAsync(peer, new TestProtocol(), options);

        await Task.Delay(TimeSpan.FromSeconds(1.5), Token);

        Assert.False(connection.IsClosed);
        Assert.True(Volatile.Read(ref probes) >= 5, $"Only {probes} probes in 1.5 s.");
    }

    [Fact]
    public async Task A_request_left_unanswered_for_the_request_timeout_fails_and_closes_the_connection()
    {
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            await p.WaitForEndAsync();
        });
        var protocol = new TestProtocol();
        await using var connection = await ConnectAsync(peer, protocol, NoKeepAlives with { RequestTimeout = TimeSpan.FromMilliseconds(300) });

        var first = connection.RequestAsync(1, InfoRequest(1, "s"), Token);
        await Task.Delay(100, Token);
        var other = connection.RequestAsync(2, InfoRequest(2, "s"), Token);
        var error = await Assert.ThrowsAsync<TestFailure>(() => first.WaitAsync(TimeSpan.FromSeconds(10), Token));

        Assert.Equal(FramedFailure.TimedOut, error.Failure);
        Assert.IsType<TimeoutException>(error.InnerException);
        Assert.True(connection.IsClosed);

        // The other request learns it too, at once rather than after its own timeout.
        var lost = await Assert.ThrowsAsync<TestFailure>(() => other.WaitAsync(TimeSpan.FromSeconds(10), Token));
        Assert.Equal(FramedFailure.Lost, lost.Failure);
        Assert.Same(error.InnerException, lost.InnerException);
    }

    [Fact]
    public async Task A_cancelled_request_fails_alone_and_its_late_reply_is_disposed()
    {
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = FramePeer.Start(async p =>
        {
            await p.AnswerHelloAsync();
            var first = await p.ReadAsync();
            await answer.Task;
            await p.SendAsync(InfoReply(first.Info.RequestId, "late"));
            var second = await p.ReadAsync();
            await p.SendAsync(InfoReply(second.Info.RequestId, "second"));
            await p.WaitForEndAsync();
        });
        var protocol = new TestProtocol { DisposableReplies = true };
        await using var connection = await ConnectAsync(peer, protocol, NoKeepAlives);

        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connection.RequestAsync(1, InfoRequest(1, "s"), cancel.Token));
        }

        answer.SetResult();
        var second = (DisposableReply)await connection.RequestAsync(2, InfoRequest(2, "s"), Token).WaitAsync(TimeSpan.FromSeconds(10), Token);

        Assert.Equal("second", second.Segment);
        Assert.False(second.Disposed);
        Assert.False(connection.IsClosed);
        var late = Assert.Single(protocol.Replies, r => r.Segment == "late");
        Assert.True(late.Disposed);
    }

    [Fact]
    public async Task Connecting_to_a_port_nobody_listens_on_fails_with_the_protocols_connect_error()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var error = await Assert.ThrowsAsync<TestFailure>(() =>
            FramedClientConnection.ConnectAsync("127.0.0.1", port, Hello, new TestProtocol(), NoKeepAlives, Token));

        Assert.Equal(FramedFailure.ConnectFailed, error.Failure);
    }

    [Fact]
    public async Task A_peer_that_never_answers_the_hello_fails_the_connect_within_the_connect_timeout()
    {
        await using var peer = FramePeer.Start(p => p.WaitForEndAsync());
        var started = DateTime.UtcNow;

        var error = await Assert.ThrowsAsync<TestFailure>(() =>
            ConnectAsync(peer, new TestProtocol(), NoKeepAlives with { ConnectTimeout = TimeSpan.FromMilliseconds(300) }));

        Assert.Equal(FramedFailure.ConnectFailed, error.Failure);
        Assert.IsType<TimeoutException>(error.InnerException);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
    }

    private static DataRequest Hello => new() { Hello = new Hello { ProtocolVersion = RawFraming.ProtocolVersion, Client = "test" } };

    private static Task<FramedClientConnection> ConnectAsync(FramePeer peer, TestProtocol protocol, FramedConnectionOptions options) =>
        FramedClientConnection.ConnectAsync("127.0.0.1", peer.Port, Hello, protocol, options, Token);

    private static DataRequest InfoRequest(long id, string segment) => new() { Info = new SegmentRequest { RequestId = id, Segment = segment } };

    private static DataReply InfoReply(long id, string segment) =>
        new() { Info = new SegmentInfoReply { RequestId = id, Info = new SegmentInfo { Segment = segment } } };

    private sealed class TestFailure(FramedFailure failure, Exception cause) : IOException($"{failure}: {cause.Message}", cause)
    {
        public FramedFailure Failure { get; } = failure;
    }

    private sealed class DisposableReply(string segment) : IDisposable
    {
        public string Segment { get; } = segment;

        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }

    private sealed class TestProtocol : IFramedClientProtocol
    {
        private int _closed;

        public bool DisposableReplies { get; init; }

        public List<DisposableReply> Replies { get; } = [];

        public int ClosedCount => Volatile.Read(ref _closed);

        public Exception? ClosedReason { get; private set; }

        public void OnFrame(FramedClientConnection connection, in ReadOnlySequence<byte> frame)
        {
            var reply = DataReply.Parser.ParseFrom(frame);
            switch (reply.KindCase)
            {
                case DataReply.KindOneofCase.Hello:
                    connection.OnHello(reply.Hello);
                    break;
                case DataReply.KindOneofCase.Info when DisposableReplies:
                    var disposable = new DisposableReply(reply.Info.Info.Segment);
                    lock (Replies)
                    {
                        Replies.Add(disposable);
                    }

                    connection.Complete(reply.Info.RequestId, disposable);
                    break;
                case DataReply.KindOneofCase.Info:
                    connection.Complete(reply.Info.RequestId, reply.Info.Info);
                    break;
            }
        }

        public void CheckHello(object reply) => Assert.IsType<HelloReply>(reply);

        public IMessage CreateKeepAlive(long nonce) => new DataRequest { KeepAlive = new KeepAlive { Nonce = nonce } };

        public Exception Failure(FramedFailure failure, Exception cause) => new TestFailure(failure, cause);

        public void OnClosed(Exception reason)
        {
            ClosedReason = reason;
            Interlocked.Increment(ref _closed);
        }
    }

    /// <summary>A scripted server for one connection: reads DataRequest frames and sends DataReply frames.</summary>
    private sealed class FramePeer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private Task _serve = Task.CompletedTask;
        private Socket? _socket;
        private NetworkStream? _stream;

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static FramePeer Start(Func<FramePeer, Task> script)
        {
            var peer = new FramePeer();
            peer._listener.Start();
            peer._serve = Task.Run(async () =>
            {
                peer._socket = await peer._listener.AcceptSocketAsync(peer._stop.Token);
                peer._stream = new NetworkStream(peer._socket, ownsSocket: true);
                await script(peer);
            });
            return peer;
        }

        public async Task AnswerHelloAsync()
        {
            var hello = await ReadAsync();
            Assert.Equal(DataRequest.KindOneofCase.Hello, hello.KindCase);
            await SendAsync(new DataReply { Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion, Server = "peer" } });
        }

        public async Task<DataRequest> ReadAsync() =>
            await TryReadAsync() ?? throw new IOException("The client closed the connection.");

        public async Task<DataRequest?> TryReadAsync()
        {
            var header = new byte[4];
            try
            {
                await _stream!.ReadExactlyAsync(header, _stop.Token);
                var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
                await _stream.ReadExactlyAsync(body, _stop.Token);
                return DataRequest.Parser.ParseFrom(body);
            }
            catch (Exception e) when (e is EndOfStreamException or IOException or OperationCanceledException)
            {
                return null;
            }
        }

        public async Task SendAsync(DataReply reply)
        {
            var frame = new byte[4 + reply.CalculateSize()];
            BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(frame.Length - 4));
            reply.WriteTo(frame.AsSpan(4));
            await _stream!.WriteAsync(frame, _stop.Token);
        }

        /// <summary>Waits until the client goes away (or the test ends), reading and ignoring frames unless told not to read.</summary>
        public async Task WaitForEndAsync(bool read = true)
        {
            if (!read)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            }

            while (await TryReadAsync() is not null)
            {
            }
        }

        /// <summary>Closes the socket at once.</summary>
        public void Drop() => _socket!.Close(0);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            _stream?.Dispose();
            await _serve.ContinueWith(_ => { }, TaskScheduler.Default);
            _stop.Dispose();
        }
    }
}
