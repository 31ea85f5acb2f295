using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Streams.Client.Serialization;

namespace Streams.Functions;

/// <summary>
/// Registers a function on an ASP.NET Core host:
/// <code>
/// var builder = WebApplication.CreateBuilder(args);
/// builder.AddStreamsFunction&lt;EnrichOrders, string&gt;(Serializers.Utf8);   // settings from the "Function" section
/// var app = builder.Build();
/// app.MapStreamsFunctionEndpoints();                                    // /healthz, /readyz, /metrics
/// await app.RunAsync();
/// </code>
/// </summary>
public static class FunctionHostExtensions
{
    /// <summary>
    /// Adds <typeparamref name="THandler"/> (a singleton) run over the reader group the "Function" configuration section
    /// and <paramref name="configure"/> describe, the health and metrics it serves, and a shutdown timeout long enough
    /// for the drain. The HTTP port is <see cref="FunctionOptions.HttpPort"/> on <see cref="FunctionOptions.HttpAddress"/>.
    /// </summary>
    public static WebApplicationBuilder AddStreamsFunction<THandler, T>(this WebApplicationBuilder builder, IEventSerializer<T> serializer, Action<FunctionOptions>? configure = null)
        where THandler : class, IStreamFunction<T>
    {
        var options = new FunctionOptions();
        builder.Configuration.GetSection("Function").Bind(options);
        configure?.Invoke(options);
        options.Validate();

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(serializer);
        builder.Services.AddSingleton<IStreamFunction<T>, THandler>();
        builder.Services.AddSingleton<FunctionState>();
        builder.Services.AddSingleton<FunctionMetrics>();
        builder.Services.AddSingleton(_ => Sdk.CreateMeterProviderBuilder()
            .AddMeter(FunctionMetrics.MeterName, "Streams.Client*")
            .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0)
            .Build());
        builder.Services.AddHostedService<FunctionHostService<T>>();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.DrainTimeout + TimeSpan.FromSeconds(10));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Parse(options.HttpAddress), options.HttpPort));
        return builder;
    }

    /// <summary>
    /// /healthz (200 while the instance has not failed), /readyz (200 while it reads its group; 503 before it joined,
    /// after it failed or once it drains) and /metrics (Prometheus).
    /// </summary>
    public static WebApplication MapStreamsFunctionEndpoints(this WebApplication app)
    {
        var meters = app.Services.GetRequiredService<MeterProvider>();
        app.Services.GetRequiredService<FunctionMetrics>();
        app.UseOpenTelemetryPrometheusScrapingEndpoint(meters, context => context.Request.Path == "/metrics", path: null, configureBranchedPipeline: null, optionsName: null);
        var state = app.Services.GetRequiredService<FunctionState>();
        app.MapGet("/healthz", () => state.Failure is { } failure ? Results.Text("failed: " + failure, statusCode: 503) : Results.Text("alive"));
        app.MapGet("/readyz", () => state.Reading ? Results.Text("reading") : Results.Text(state.Ended ? "done: the group has read everything" : state.Failure ?? "not reading", statusCode: 503));
        return app;
    }
}
