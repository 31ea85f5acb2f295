using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Grpc;
using Streams.Common.Server.Hosting;
using Streams.Common.Server.Metrics;

namespace Streams.Hosting;

/// <summary>
/// The network face every server role shares: gRPC on the gRPC port (cleartext HTTP/2, or TLS with ALPN), an optional
/// raw framed data port, and HTTP/1.1 /metrics and /healthz on the metrics port; Kestrel tuned for long-lived streams.
/// </summary>
internal static class RoleServer
{
    /// <param name="settings">Ports and bind address.</param>
    /// <param name="loggerFactory">Logging for the web host.</param>
    /// <param name="grpc">The gRPC methods to serve.</param>
    /// <param name="metrics">What /metrics renders.</param>
    /// <param name="health">Healthy or not, with a one-line reason, for /healthz.</param>
    /// <param name="services">Singletons the data handler needs.</param>
    /// <param name="data">Installs the raw data carrier's connection handler, or null for none.</param>
    public static WebApplication Build(
        ServerSettings settings,
        ILoggerFactory loggerFactory,
        GrpcServer grpc,
        PrometheusMetrics metrics,
        Func<(bool Healthy, string Detail)> health,
        Action<IServiceCollection> services,
        Action<ListenOptions>? data)
    {
        var certificate = settings.LoadCertificate();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore().UseKestrelHttpsConfiguration();
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddTunedMemoryPool();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        services(builder.Services);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            KestrelTuning.ApplyLimits(kestrel);
            kestrel.Listen(settings.BindAddress, settings.GrpcPort, listen =>
            {
                if (certificate is null)
                {
                    listen.Protocols = HttpProtocols.Http2;
                }
                else
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(certificate);
                }
            });
            if (data is not null)
            {
                kestrel.Listen(settings.BindAddress, settings.DataPort, data);
            }

            kestrel.Listen(settings.BindAddress, settings.MetricsPort, listen => listen.Protocols = HttpProtocols.Http1);
        });

        var app = builder.Build();
        grpc.StoppingToken = app.Lifetime.ApplicationStopping;
        app.Run(context => context.Connection.LocalPort == settings.MetricsPort
            ? ServeHttpAsync(context, metrics, health)
            : grpc.HandleAsync(context));
        return app;
    }

    /// <summary>Starts listening; a busy port becomes one clear error naming the ports.</summary>
    public static async Task StartAsync(WebApplication app, ServerSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e) when (e.InnerException is AddressInUseException || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(
                $"A port is already in use ({settings.Host}: gRPC {settings.GrpcPort}, data {settings.DataPort}, metrics {settings.MetricsPort}). " +
                "Is another streams server running? Choose other ports with --port, --data-port and --metrics-port.", e);
        }
    }

    public static async Task StopAsync(WebApplication app)
    {
        try
        {
            await app.StopAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
            // Never started.
        }

        await app.DisposeAsync();
    }

    private static async Task ServeHttpAsync(HttpContext context, PrometheusMetrics metrics, Func<(bool Healthy, string Detail)> health)
    {
        switch (context.Request.Path.Value)
        {
            case "/metrics":
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await context.Response.WriteAsync(metrics.Render());
                break;
            case "/healthz":
                var (healthy, detail) = health();
                context.Response.StatusCode = healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                await context.Response.WriteAsync(detail + "\n");
                break;
            default:
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                await context.Response.WriteAsync("Try /metrics or /healthz.\n");
                break;
        }
    }
}
