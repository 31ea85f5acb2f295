using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Grpc;
using Streams.Interop;

namespace Streams.Common.Server.Tests.Grpc;

public sealed class GeneratedServiceMethodProviderTests
{
    [Fact]
    public async Task An_rpc_of_the_proto_left_unimplemented_fails_at_start_up_naming_it()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddStreamsGrpc([]);
        builder.Services.AddSingleton<HalfEcho>();
        await using var app = builder.Build();
        var error = Assert.Throws<InvalidOperationException>(() => app.MapGrpcService<HalfEcho>());
        Assert.Contains("/streams.interop.v1.Echo/Sleep", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("/streams.interop.v1.Echo/Bidi", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("/streams.interop.v1.Echo/Unary", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Implements three of Echo's five rpcs.</summary>
    private sealed class HalfEcho : Echo.EchoBase
    {
        public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) => Task.FromResult(new EchoReply());

        public override Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context) => Task.CompletedTask;

        public override Task<EchoReply> Fail(EchoRequest request, ServerCallContext context) => Task.FromResult(new EchoReply());
    }
}
