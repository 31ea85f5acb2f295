using System.Net;
using Google.Protobuf;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Grpc.Client;
using Streams.Contracts.Health;
using Streams.Interop;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Grpc;

/// <summary>Our gRPC client against our gRPC server (the grpc-js interop lives in the integration tests).</summary>
public sealed class GrpcTransportTests : IAsyncLifetime
{
    private GrpcTestHost _host = null!;
    private GrpcChannel _channel = null!;

    public async ValueTask InitializeAsync()
    {
        _host = await GrpcTestHost.StartAsync(maxReceiveMessageSize: 64 * 1024);
        _channel = GrpcChannel.ForAddress(_host.Uri);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
    }

    [Fact]
    public async Task Unary_call_round_trips()
    {
        var reply = await _channel.UnaryAsync(EchoApi.Unary, new EchoRequest { Text = "hello", Payload = ByteString.CopyFromUtf8("bytes") });
        Assert.Equal("hello", reply.Text);
        Assert.Equal("bytes", reply.Payload.ToStringUtf8());
    }

    [Fact]
    public async Task Server_streaming_delivers_every_message_then_ends()
    {
        await using var call = _channel.ServerStreaming(EchoApi.ServerStream, new EchoRequest { Text = "s", Count = 250 });
        var indexes = new List<int>();
        while (await call.MoveNextAsync())
        {
            indexes.Add(call.Current.Index);
        }

        Assert.Equal(Enumerable.Range(0, 250), indexes);
        Assert.Equal(StatusCode.OK, call.Status!.Value.Code);
    }

    [Fact]
    public async Task Duplex_call_interleaves_requests_and_replies()
    {
        await using var call = _channel.Duplex(EchoApi.Bidi);
        for (var i = 0; i < 50; i++)
        {
            await call.WriteAsync(new EchoRequest { Text = "m" + i });
            Assert.True(await call.MoveNextAsync());
            Assert.Equal("m" + i, call.Current.Text);
            Assert.Equal(i, call.Current.Index);
        }

        await call.CompleteRequestAsync();
        Assert.False(await call.MoveNextAsync());
    }

    [Fact]
    public async Task Status_code_and_message_reach_the_client()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            _channel.UnaryAsync(EchoApi.Fail, new EchoRequest { Code = (int)StatusCode.FailedPrecondition, Text = "stream is sealed: 100% ✓" }));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal("stream is sealed: 100% ✓", error.Status.Detail);
    }

    [Fact]
    public async Task Unknown_methods_are_unimplemented()
    {
        var method = new Method<EchoRequest, EchoReply>(MethodType.Unary, "no.Such", "Method", EchoApi.Unary.RequestMarshaller, EchoApi.Unary.ResponseMarshaller);
        var error = await Assert.ThrowsAsync<RpcException>(() => _channel.UnaryAsync(method, new EchoRequest()));
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Contains("/no.Such/Method", error.Status.Detail);
    }

    [Fact]
    public async Task Deadline_expires_on_both_sides()
    {
        var before = _host.Echo.Cancellations;
        var started = _host.Echo.Sleeps;
        // Long enough for the call to reach the handler even on a busy machine, so the server side has something to cancel.
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            _channel.UnaryAsync(EchoApi.Sleep, new EchoRequest { DelayMs = 10_000 }, CallOptions.WithTimeout(TimeSpan.FromSeconds(1))));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.True(_host.Echo.Sleeps > started, "The call never reached the server handler.");
        await WaitUntilAsync(() => _host.Echo.Cancellations > before);
    }

    [Fact]
    public async Task Expired_deadline_fails_without_a_call()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            _channel.UnaryAsync(EchoApi.Unary, new EchoRequest(), new CallOptions(Deadline: DateTime.UtcNow.AddSeconds(-1))));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    [Fact]
    public async Task Client_cancellation_reaches_the_server_handler()
    {
        var before = _host.Echo.Cancellations;
        var started = _host.Echo.Sleeps;
        using var cts = new CancellationTokenSource();
        var call = _channel.UnaryAsync(EchoApi.Sleep, new EchoRequest { DelayMs = 10_000 }, new CallOptions(CancellationToken: cts.Token));
        await WaitUntilAsync(() => _host.Echo.Sleeps > started); // cancel once the handler runs
        await cts.CancelAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        await WaitUntilAsync(() => _host.Echo.Cancellations > before);
    }

    [Fact]
    public async Task Oversized_request_is_refused_with_resource_exhausted()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            _channel.UnaryAsync(EchoApi.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[100 * 1024]) }));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);

        // The server is unharmed.
        Assert.Equal("ok", (await _channel.UnaryAsync(EchoApi.Unary, new EchoRequest { Text = "ok" })).Text);
    }

    [Fact]
    public async Task Oversized_response_is_refused_by_the_client()
    {
        using var small = GrpcChannel.ForAddress(_host.Uri, new GrpcChannelOptions { MaxReceiveMessageSize = 1024 });
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            small.UnaryAsync(EchoApi.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[8 * 1024]) }));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task Client_refuses_to_send_oversized_messages()
    {
        using var small = GrpcChannel.ForAddress(_host.Uri, new GrpcChannelOptions { MaxSendMessageSize = 100 });
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            small.UnaryAsync(EchoApi.Unary, new EchoRequest { Payload = ByteString.CopyFrom(new byte[1000]) }));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task Many_concurrent_calls_share_the_connection()
    {
        var calls = Enumerable.Range(0, 200).Select(i => _channel.UnaryAsync(EchoApi.Unary, new EchoRequest { Text = "c" + i }));
        var replies = await Task.WhenAll(calls);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => "c" + i), replies.Select(r => r.Text));
    }

    [Fact]
    public async Task Health_reports_serving_and_unknown_services()
    {
        var health = await _channel.UnaryAsync(HealthApi.Check, new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        var error = await Assert.ThrowsAsync<RpcException>(() => _channel.UnaryAsync(HealthApi.Check, new HealthCheckRequest { Service = "nope" }));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task Unreachable_server_is_unavailable()
    {
        using var nowhere = GrpcChannel.ForAddress($"http://127.0.0.1:{Ports.Free()}");
        var error = await Assert.ThrowsAsync<RpcException>(() => nowhere.UnaryAsync(EchoApi.Unary, new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task Non_grpc_requests_get_http_errors_not_crashes()
    {
        using var http = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        var wrongType = await http.PostAsync(_host.Uri + "/streams.interop.v1.Echo/Unary", new StringContent("hello"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);
        var get = await http.GetAsync(_host.Uri + "/streams.interop.v1.Echo/Unary", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);

        // A gRPC message with garbage inside is a malformed request, answered with INVALID_ARGUMENT.
        var garbage = new ByteArrayContent([0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF]);
        garbage.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        var request = new HttpRequestMessage(HttpMethod.Post, _host.Uri + "/streams.interop.v1.Echo/Unary")
        {
            Content = garbage,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TE.ParseAdd("trailers");
        var response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        var status = response.Headers.TryGetValues("grpc-status", out var values) ? values.First() : null;
        await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        status ??= response.TrailingHeaders.TryGetValues("grpc-status", out var trailers) ? trailers.First() : null;
        Assert.Equal(((int)StatusCode.InvalidArgument).ToString(System.Globalization.CultureInfo.InvariantCulture), status);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 10 s.");
            await Task.Delay(20);
        }
    }
}
