using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Streams.Client.Internal;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Tests.Internal;

/// <summary>
/// A segment store that is frozen or cut off keeps its TCP connections open; the raw connection notices the silence
/// through keep-alives and closes, so writers and readers move on. One that answers stays connected.
/// </summary>
public sealed class KeepAliveTests
{
    private static readonly KeepAliveSettings Fast = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1));

    [Fact]
    public async Task A_silent_server_is_dropped_after_the_keep_alive_timeout_and_pending_reads_fail()
    {
        await using var server = await FakeServer.StartAsync(answerKeepAlives: false);
        await using var connection = await RawSegmentStoreConnection.ConnectAsync("127.0.0.1", server.Port, TimeSpan.FromSeconds(5), Fast);

        var read = connection.ReadAsync("s/t/0.#epoch.0", 0, 1024, waitMillis: 60_000, TestContext.Current.CancellationToken);
        var error = await Assert.ThrowsAnyAsync<IOException>(() => read.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        Assert.True(connection.IsClosed);
        Assert.Contains("keep-alive", error.InnerException?.Message ?? error.Message, StringComparison.Ordinal);
        Assert.True(server.KeepAlivesReceived >= 2, $"Only {server.KeepAlivesReceived} keep-alives were sent before giving up.");
    }

    [Fact]
    public async Task A_server_that_answers_keep_alives_stays_connected()
    {
        await using var server = await FakeServer.StartAsync(answerKeepAlives: true);
        await using var connection = await RawSegmentStoreConnection.ConnectAsync("127.0.0.1", server.Port, TimeSpan.FromSeconds(5), Fast);

        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);

        Assert.False(connection.IsClosed);
        Assert.True(server.KeepAlivesReceived >= 5, $"Only {server.KeepAlivesReceived} keep-alives in 3 s.");
    }

    [Fact]
    public async Task A_server_that_stops_reading_is_dropped_within_the_timeout_though_a_write_is_stuck()
    {
        await using var server = await FakeServer.StartAsync(answerKeepAlives: true, freezeAfterHello: true);
        await using var connection = await RawSegmentStoreConnection.ConnectAsync("127.0.0.1", server.Port, TimeSpan.FromSeconds(5), Fast);

        // Blocks until the socket's buffers are full: the frozen server reads nothing, so the last write never ends.
        var block = new System.Buffers.ReadOnlySequence<byte>(new byte[1 << 20]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var writing = Task.Run(async () =>
        {
            for (var i = 0; i < 256 && !connection.IsClosed; i++)
            {
                await connection.SendBlockAsync(new AppendBlockHeader(1, i, 1, null), block, TestContext.Current.CancellationToken);
            }
        });

        while (!connection.IsClosed && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.True(connection.IsClosed, "The connection to a server that reads nothing was still open after 10 s.");
        Assert.True(clock.Elapsed < Fast.Timeout + TimeSpan.FromSeconds(1), $"Dropped only after {clock.Elapsed}.");
        await Assert.ThrowsAnyAsync<Exception>(() => writing.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
    }

    [Fact]
    public void By_default_a_frozen_segment_store_is_left_within_three_seconds()
    {
        var options = new StreamsClientOptions();
        Assert.True(options.KeepAliveTimeout + (options.KeepAliveInterval / 4) <= TimeSpan.FromSeconds(3),
            $"Keep-alive timeout {options.KeepAliveTimeout}, checked every {options.KeepAliveInterval / 4}.");
    }

    /// <summary>Answers Hello, then keep-alives only if told to, and nothing else; or, frozen, reads nothing after the hello.</summary>
    private sealed class FakeServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private Task _serve = Task.CompletedTask;
        private int _keepAlives;

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int KeepAlivesReceived => Volatile.Read(ref _keepAlives);

        public static Task<FakeServer> StartAsync(bool answerKeepAlives, bool freezeAfterHello = false)
        {
            var server = new FakeServer();
            server._listener.Start();
            server._serve = Task.Run(() => server.ServeAsync(answerKeepAlives, freezeAfterHello));
            return Task.FromResult(server);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serve.ContinueWith(_ => { }, TaskScheduler.Default);
            _stop.Dispose();
        }

        private async Task ServeAsync(bool answerKeepAlives, bool freezeAfterHello)
        {
            using var socket = await _listener.AcceptSocketAsync(_stop.Token);
            await using var stream = new NetworkStream(socket);
            var header = new byte[4];
            while (!_stop.IsCancellationRequested)
            {
                await stream.ReadExactlyAsync(header, _stop.Token);
                var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
                await stream.ReadExactlyAsync(body, _stop.Token);
                var request = DataRequest.Parser.ParseFrom(body);
                DataReply? reply = null;
                if (request.KindCase == DataRequest.KindOneofCase.Hello)
                {
                    reply = new DataReply { Hello = new HelloReply { ProtocolVersion = RawFraming.ProtocolVersion } };
                }
                else if (request.KindCase == DataRequest.KindOneofCase.KeepAlive)
                {
                    Interlocked.Increment(ref _keepAlives);
                    reply = answerKeepAlives ? new DataReply { KeepAlive = request.KeepAlive } : null;
                }

                if (reply is not null)
                {
                    var writer = new ArrayBufferWriter<byte>();
                    RawFraming.WriteMessage(writer, reply);
                    await stream.WriteAsync(writer.WrittenMemory, _stop.Token);
                }

                if (freezeAfterHello && request.KindCase == DataRequest.KindOneofCase.Hello)
                {
                    // Frozen: the socket stays open, and nothing is read or answered any more.
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                }
            }
        }
    }
}
