using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Streams.Common.Grpc;
using Streams.Interop;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>Our gRPC transport against a real gRPC stack, grpc-js, in both directions.</summary>
public sealed class GrpcInteropTests
{
    // ---- grpc-js client -> our server ----

    [Fact]
    public async Task Grpcjs_calls_our_server_unary()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "unary");
        Assert.True(result.GetProperty("ok").GetBoolean());
        Assert.Equal("hello from grpc-js", result.GetProperty("text").GetString());
        Assert.Equal([1, 2, 3], result.GetProperty("payload").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public async Task Grpcjs_reads_our_server_stream()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "serverStream");
        Assert.Equal(Enumerable.Range(0, 100), result.GetProperty("indexes").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public async Task Grpcjs_talks_bidi_with_our_server()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "bidi");
        Assert.Equal(Enumerable.Range(0, 5).Select(i => "m" + i), result.GetProperty("texts").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Grpcjs_sees_our_error_status_and_message()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "fail");
        Assert.Equal((int)StatusCode.FailedPrecondition, result.GetProperty("code").GetInt32());
        Assert.Equal("stream is sealed ✓ 100%", result.GetProperty("details").GetString());
    }

    [Fact]
    public async Task Grpcjs_deadline_cancels_our_handler()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "deadline");
        Assert.Equal((int)StatusCode.DeadlineExceeded, result.GetProperty("code").GetInt32());
        Assert.InRange(result.GetProperty("elapsedMs").GetInt32(), 950, 6000); // a 1 s deadline: long enough to reach our handler on a busy machine
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (host.Echo.Cancellations == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "Our handler never saw the deadline.");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Grpcjs_checks_our_health()
    {
        await using var host = await GrpcTestHost.StartAsync();
        var result = await Node.RunJsonAsync("grpc-client.js", Port(host), "health");
        Assert.Equal("SERVING", result.GetProperty("status").GetString());
    }

    // ---- our client -> grpc-js server ----

    [Fact]
    public async Task Our_client_calls_a_grpcjs_server()
    {
        var port = Ports.Free();
        using var server = await Node.StartAsync("grpc-server.js", "listening", port.ToString(CultureInfo.InvariantCulture));
        try
        {
            using var channel = GrpcChannels.Create($"http://127.0.0.1:{port}");
            var echo = new Echo.EchoClient(channel);
            var ct = TestContext.Current.CancellationToken;

            var unary = await echo.UnaryAsync(new EchoRequest { Text = "hi", Payload = ByteString.CopyFrom(new byte[100_000]) }, cancellationToken: ct);
            Assert.Equal(("hi", 100_000), (unary.Text, unary.Payload.Length));

            using (var stream = echo.ServerStream(new EchoRequest { Text = "s", Count = 50 }, cancellationToken: ct))
            {
                var count = 0;
                while (await stream.ResponseStream.MoveNext(ct))
                {
                    Assert.Equal(count++, stream.ResponseStream.Current.Index);
                }

                Assert.Equal(50, count);
            }

            using (var bidi = echo.Bidi(cancellationToken: ct))
            {
                for (var i = 0; i < 10; i++)
                {
                    await bidi.RequestStream.WriteAsync(new EchoRequest { Text = "b" + i }, ct);
                    Assert.True(await bidi.ResponseStream.MoveNext(ct));
                    Assert.Equal("b" + i, bidi.ResponseStream.Current.Text);
                }

                await bidi.RequestStream.CompleteAsync();
                Assert.False(await bidi.ResponseStream.MoveNext(ct));
            }

            var error = await Assert.ThrowsAsync<RpcException>(async () => await echo.FailAsync(new EchoRequest { Code = (int)StatusCode.NotFound, Text = "no such stream ✓" }, cancellationToken: ct));
            Assert.Equal((StatusCode.NotFound, "no such stream ✓"), (error.StatusCode, error.Status.Detail));

            var watch = Stopwatch.StartNew();
            var late = await Assert.ThrowsAsync<RpcException>(async () =>
                await echo.SleepAsync(new EchoRequest { DelayMs = 10_000 }, GrpcChannels.Deadline(TimeSpan.FromMilliseconds(300), ct)));
            Assert.Equal(StatusCode.DeadlineExceeded, late.StatusCode);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
        }
    }

    private static string Port(GrpcTestHost host) => host.Port.ToString(CultureInfo.InvariantCulture);
}
