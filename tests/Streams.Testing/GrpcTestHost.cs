using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Grpc;
using Streams.Common.Server.Hosting;

namespace Streams.Testing;

/// <summary>
/// The gRPC hosting every role uses (Grpc.AspNetCore with our binding, interceptor, limits, health and reflection) on
/// Kestrel at a free loopback port, serving the Echo test service.
/// </summary>
public sealed class GrpcTestHost : IAsyncDisposable
{
    /// <summary>The health service name the test host reports; <see cref="Ready"/> decides it.</summary>
    public const string EchoServiceName = "streams.interop.v1.Echo";

    private readonly WebApplication _app;

    private GrpcTestHost(WebApplication app, int port, EchoService echo)
    {
        _app = app;
        Port = port;
        Echo = echo;
    }

    public int Port { get; }

    public string Uri { get; private init; } = string.Empty;

    public EchoService Echo { get; }

    /// <summary>Whether the Echo service reports SERVING to the health service.</summary>
    public bool Ready { get; set; } = true;

    public IServiceProvider Services => _app.Services;

    public static async Task<GrpcTestHost> StartAsync(System.Security.Cryptography.X509Certificates.X509Certificate2? certificate = null)
    {
        var port = Ports.Free();
        var echo = new EchoService();
        GrpcTestHost? host = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddTunedMemoryPool();
        builder.Services.AddStreamsGrpc([new ReadinessCheck("echo", () => host?.Ready != false ? HealthCheckResult.Healthy("ready") : HealthCheckResult.Unhealthy("not ready"), [EchoServiceName])]);
        builder.Services.AddSingleton(echo);
        builder.WebHost.ConfigureKestrel(k =>
        {
            KestrelTuning.ApplyLimits(k);
            k.ListenLocalhost(port, l =>
            {
                if (certificate is null)
                {
                    l.Protocols = HttpProtocols.Http2;
                }
                else
                {
                    l.Protocols = HttpProtocols.Http1AndHttp2;
                    l.UseHttps(certificate);
                }
            });
        });
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        app.MapStreamsGrpc();
        await app.StartAsync();
        host = new GrpcTestHost(app, port, echo) { Uri = $"{(certificate is null ? "http" : "https")}://localhost:{port}" };
        return host;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
