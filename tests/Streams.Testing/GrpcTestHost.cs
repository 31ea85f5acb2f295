using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Common.Server.Grpc;
using Streams.Common.Server.Hosting;

namespace Streams.Testing;

/// <summary>Our gRPC server on Kestrel at a free loopback port, serving Echo and Health.</summary>
public sealed class GrpcTestHost : IAsyncDisposable
{
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

    public static async Task<GrpcTestHost> StartAsync(int maxReceiveMessageSize = 16 * 1024 * 1024, System.Security.Cryptography.X509Certificates.X509Certificate2? certificate = null)
    {
        var port = Ports.Free();
        var server = new GrpcServer(new GrpcServerOptions { MaxReceiveMessageSize = maxReceiveMessageSize }, NullLogger<GrpcServer>.Instance);
        var echo = new EchoService();
        echo.Register(server);
        new HealthService().Register(server);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddTunedMemoryPool();
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
        app.Run(server.HandleAsync);
        await app.StartAsync();
        return new GrpcTestHost(app, port, echo) { Uri = $"{(certificate is null ? "http" : "https")}://localhost:{port}" };
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
