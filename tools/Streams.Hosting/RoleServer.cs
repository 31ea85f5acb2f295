using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Streams.Common.Server.Grpc;
using Streams.Common.Server.Hosting;

namespace Streams.Hosting;

/// <summary>
/// The network face every server role shares: gRPC on the gRPC port (cleartext HTTP/2, or TLS with ALPN) with health
/// and reflection, an optional raw framed data port, and HTTP/1.1 on the metrics port: /metrics (OpenTelemetry's
/// Prometheus exporter), /healthz (liveness: the process answers) and /readyz (readiness: the role's checks pass, one
/// line per check); Kestrel tuned for long-lived streams.
/// </summary>
internal static class RoleServer
{
    /// <param name="settings">Ports and bind address.</param>
    /// <param name="loggerFactory">Logging for the web host.</param>
    /// <param name="services">Registers the role's singletons: its gRPC service implementations and what the data handler needs.</param>
    /// <param name="grpc">Maps the role's gRPC services.</param>
    /// <param name="readiness">The role's readiness checks, each gating the gRPC services it names.</param>
    /// <param name="meters">The meter provider whose Prometheus exporter answers /metrics.</param>
    /// <param name="data">Installs the raw data carrier's connection handler, or null for none.</param>
    public static WebApplication Build(
        ServerSettings settings,
        ILoggerFactory loggerFactory,
        Action<IServiceCollection> services,
        Action<IEndpointRouteBuilder> grpc,
        IReadOnlyList<ReadinessCheck> readiness,
        MeterProvider meters,
        Action<ListenOptions>? data)
    {
        var certificate = settings.LoadCertificate();
        // The empty builder: configuration is already bound by the role, and no default source (or its file watcher) is wanted.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore().UseKestrelHttpsConfiguration();
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddLogging();
        builder.Services.AddRouting();
        builder.Services.AddTunedMemoryPool();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.Services.AddStreamsGrpc(readiness);
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
        var metricsPort = settings.MetricsPort;
        app.Use((context, next) =>
        {
            // Scrapes and probes are not the role's traffic: they stay out of the HTTP server metrics.
            if (context.Connection.LocalPort == metricsPort && context.Features.Get<IHttpMetricsTagsFeature>() is { } tags)
            {
                tags.MetricsDisabled = true;
            }

            return next(context);
        });
        app.UseOpenTelemetryPrometheusScrapingEndpoint(
            meters, context => context.Connection.LocalPort == metricsPort && context.Request.Path == "/metrics", path: null, configureBranchedPipeline: null, optionsName: null);
        app.MapWhen(context => context.Connection.LocalPort == metricsPort, http => http.Run(ServeHttpAsync));
        grpc(app);
        app.MapStreamsGrpc();
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

    private static async Task ServeHttpAsync(HttpContext context)
    {
        switch (context.Request.Path.Value)
        {
            case "/healthz":
                await context.Response.WriteAsync("live\n");
                break;
            case "/readyz":
                var report = await context.RequestServices.GetRequiredService<HealthCheckService>().CheckHealthAsync(context.RequestAborted);
                context.Response.StatusCode = report.Status == HealthStatus.Healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                var text = new StringBuilder();
                foreach (var (name, entry) in report.Entries)
                {
                    text.Append(name).Append(": ").Append(entry.Status == HealthStatus.Healthy ? "ready" : "not ready").Append(", ").Append(entry.Description).Append('\n');
                }

                await context.Response.WriteAsync(text.ToString());
                break;
            default:
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                await context.Response.WriteAsync("Try /metrics, /healthz or /readyz.\n");
                break;
        }
    }
}
