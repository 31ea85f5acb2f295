using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using Microsoft.Extensions.Hosting;
using Streams.Common.Grpc;
using Streams.Interop;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Grpc;

/// <summary>
/// The gRPC hosting every role uses (Grpc.AspNetCore with our binding, interceptor, limits, health and reflection),
/// called with Grpc.Net.Client channels as our clients make them. The grpc-js interop lives in the integration tests.
/// </summary>
public sealed class GrpcHostingTests : IAsyncLifetime
{
    private GrpcTestHost _host = null!;
    private GrpcChannel _channel = null!;
    private Echo.EchoClient _echo = null!;

    public async ValueTask InitializeAsync()
    {
        _host = await GrpcTestHost.StartAsync();
        _channel = GrpcChannels.Create(_host.Uri);
        _echo = new Echo.EchoClient(_channel);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
    }

    [Fact]
    public async Task Unary_call_round_trips()
    {
        var reply = await _echo.UnaryAsync(new EchoRequest { Text = "hello", Payload = ByteString.CopyFromUtf8("bytes") });
        Assert.Equal("hello", reply.Text);
        Assert.Equal("bytes", reply.Payload.ToStringUtf8());
    }

    [Fact]
    public async Task Server_streaming_delivers_every_message_then_ends()
    {
        using var call = _echo.ServerStream(new EchoRequest { Text = "s", Count = 250 });
        var indexes = new List<int>();
        while (await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken))
        {
            indexes.Add(call.ResponseStream.Current.Index);
        }

        Assert.Equal(Enumerable.Range(0, 250), indexes);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task Duplex_call_interleaves_requests_and_replies()
    {
        using var call = _echo.Bidi();
        for (var i = 0; i < 50; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = "m" + i }, TestContext.Current.CancellationToken);
            Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
            Assert.Equal("m" + i, call.ResponseStream.Current.Text);
            Assert.Equal(i, call.ResponseStream.Current.Index);
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Status_code_and_message_reach_the_client()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await _echo.FailAsync(new EchoRequest { Code = (int)StatusCode.FailedPrecondition, Text = "stream is sealed: 100% ✓" }));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal("stream is sealed: 100% ✓", error.Status.Detail);
    }

    [Fact]
    public async Task A_handler_bug_is_internal_with_an_error_id_and_no_internals()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await _echo.FailAsync(new EchoRequest { Code = 0, Text = "/secret/path" }));
        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Matches("^Internal error [0-9a-f]{32}; the server's log has the details\\.$", error.Status.Detail);
        Assert.DoesNotContain("secret", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_methods_are_unimplemented()
    {
        var method = new Method<EchoRequest, EchoReply>(MethodType.Unary, "no.Such", "Method",
            Marshallers.Create(m => m.ToByteArray(), EchoRequest.Parser.ParseFrom), Marshallers.Create(m => m.ToByteArray(), EchoReply.Parser.ParseFrom));
        var error = await Assert.ThrowsAsync<RpcException>(async () => await _channel.CreateCallInvoker().AsyncUnaryCall(method, null, default, new EchoRequest()));
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
    }

    [Fact]
    public async Task Deadline_expires_on_both_sides()
    {
        var before = _host.Echo.Cancellations;
        var started = _host.Echo.Sleeps;
        // Long enough for the call to reach the handler even on a busy machine, so the server side has something to cancel.
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await _echo.SleepAsync(new EchoRequest { DelayMs = 10_000 }, GrpcChannels.Deadline(TimeSpan.FromSeconds(1))));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.True(_host.Echo.Sleeps > started, "The call never reached the server handler.");
        await WaitUntilAsync(() => _host.Echo.Cancellations > before);
    }

    [Fact]
    public async Task Expired_deadline_fails_without_a_call()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await _echo.UnaryAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(-1)));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    [Fact]
    public async Task Client_cancellation_reaches_the_server_handler()
    {
        var before = _host.Echo.Cancellations;
        var started = _host.Echo.Sleeps;
        using var cts = new CancellationTokenSource();
        var call = _echo.SleepAsync(new EchoRequest { DelayMs = 10_000 }, cancellationToken: cts.Token);
        await WaitUntilAsync(() => _host.Echo.Sleeps > started); // cancel once the handler runs
        await cts.CancelAsync();
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        await WaitUntilAsync(() => _host.Echo.Cancellations > before);
    }

    [Fact]
    public async Task Oversized_request_is_refused_with_resource_exhausted()
    {
        // A client that would send it: ours refuse before sending (below).
        using var large = GrpcChannel.ForAddress(_host.Uri, new GrpcChannelOptions { MaxSendMessageSize = 64 * 1024 * 1024 });
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await new Echo.EchoClient(large).UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[GrpcChannels.MaxMessageSize + 1]) }));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);

        // The server is unharmed.
        Assert.Equal("ok", (await _echo.UnaryAsync(new EchoRequest { Text = "ok" })).Text);
    }

    [Fact]
    public async Task The_largest_event_fits_in_a_message()
    {
        var reply = await _echo.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[(8 * 1024 * 1024) + 4096]) });
        Assert.Equal((8 * 1024 * 1024) + 4096, reply.Payload.Length);
    }

    [Fact]
    public async Task Client_refuses_to_send_oversized_messages()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await _echo.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[GrpcChannels.MaxMessageSize + 1]) }));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task Many_concurrent_calls_share_the_connection()
    {
        var calls = Enumerable.Range(0, 200).Select(i => _echo.UnaryAsync(new EchoRequest { Text = "c" + i }).ResponseAsync);
        var replies = await Task.WhenAll(calls);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => "c" + i), replies.Select(r => r.Text));
    }

    [Fact]
    public async Task Health_follows_readiness_per_service_and_watch_sees_the_change()
    {
        var health = new Health.HealthClient(_channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = GrpcTestHost.EchoServiceName })).Status);
        var unknown = await Assert.ThrowsAsync<RpcException>(async () => await health.CheckAsync(new HealthCheckRequest { Service = "nope" }));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        using var watch = health.Watch(new HealthCheckRequest { Service = GrpcTestHost.EchoServiceName }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(await watch.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);

        _host.Ready = false;
        using var within = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        within.CancelAfter(TimeSpan.FromSeconds(10));
        Assert.True(await watch.ResponseStream.MoveNext(within.Token));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = GrpcTestHost.EchoServiceName })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task Reflection_lists_every_service()
    {
        var reflection = new ServerReflection.ServerReflectionClient(_channel);
        using var call = reflection.ServerReflectionInfo(cancellationToken: TestContext.Current.CancellationToken);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = string.Empty }, TestContext.Current.CancellationToken);
        Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains(GrpcTestHost.EchoServiceName, services);
        Assert.Contains("grpc.health.v1.Health", services);
        Assert.Contains("grpc.reflection.v1alpha.ServerReflection", services);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = GrpcTestHost.EchoServiceName }, TestContext.Current.CancellationToken);
        Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.NotEmpty(call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto);
        await call.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task Stopping_the_server_ends_long_calls_with_unavailable()
    {
        var started = _host.Echo.Sleeps;
        var call = _echo.SleepAsync(new EchoRequest { DelayMs = 60_000 });
        await WaitUntilAsync(() => _host.Echo.Sleeps > started);
        var lifetime = (IHostApplicationLifetime)_host.Services.GetService(typeof(IHostApplicationLifetime))!;
        lifetime.StopApplication();
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync.WaitAsync(TimeSpan.FromSeconds(8)));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task Unreachable_server_is_unavailable()
    {
        using var nowhere = GrpcChannels.Create($"http://127.0.0.1:{Ports.Free()}");
        var error = await Assert.ThrowsAsync<RpcException>(async () => await new Echo.EchoClient(nowhere).UnaryAsync(new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task Non_grpc_requests_get_errors_not_crashes()
    {
        using var http = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        var wrongType = await http.PostAsync(_host.Uri + "/streams.interop.v1.Echo/Unary", new StringContent("hello"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);

        // A gRPC message with garbage inside is a malformed request, answered with INVALID_ARGUMENT.
        var garbage = new ByteArrayContent([0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF]);
        garbage.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, _host.Uri + "/streams.interop.v1.Echo/Unary")
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

        Assert.Equal("ok", (await _echo.UnaryAsync(new EchoRequest { Text = "ok" })).Text);
    }

    private static Task WaitUntilAsync(Func<bool> condition) =>
        Waiting.UntilAsync(condition, "the condition holds", TimeSpan.FromSeconds(10));
}
