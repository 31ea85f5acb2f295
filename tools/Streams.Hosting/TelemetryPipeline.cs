using System.Reflection;
using Microsoft.Extensions.Configuration;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Streams.Bookie;
using Streams.SegmentStore;

namespace Streams.Hosting;

/// <summary>
/// The OpenTelemetry SDK set up for a server process: one meter provider over every "Streams.*" meter, the .NET
/// runtime, the process and ASP.NET Core (Kestrel, HTTP server requests), read by the Prometheus exporter behind
/// /metrics and, when Telemetry:OtlpEndpoint is set, pushed over OTLP too. Names and units: docs/metrics.md.
/// </summary>
internal sealed class TelemetryPipeline : IDisposable
{
    /// <summary>How often metrics are pushed over OTLP; Prometheus pulls /metrics on its own schedule.</summary>
    private static readonly TimeSpan OtlpExportInterval = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Runtime and process gauges whose OpenTelemetry names end in ".count": Prometheus keeps the "_count" suffix for
    /// histograms and summaries (promtool rejects other metrics named so), so they are exported without it.
    /// </summary>
    private static readonly Dictionary<string, string> Renamed = new(StringComparer.Ordinal)
    {
        ["dotnet.assembly.count"] = "dotnet.assemblies",
        ["dotnet.process.cpu.count"] = "dotnet.process.cpus",
        ["dotnet.timer.count"] = "dotnet.timers",
        ["process.thread.count"] = "process.threads",
        ["process.unix.file_descriptor.count"] = "process.unix.file_descriptors",
    };

    private TelemetryPipeline(MeterProvider meters)
    {
        Meters = meters;
    }

    /// <summary>The meter provider; its Prometheus exporter answers /metrics.</summary>
    public MeterProvider Meters { get; }

    /// <summary>
    /// Builds the pipeline. Reads Telemetry:OtlpEndpoint (the collector's base address, e.g. http://collector:4318;
    /// "v1/metrics" is appended for OTLP/HTTP) and Telemetry:OtlpProtocol ("http/protobuf", the default, or "grpc",
    /// usually port 4317). Throws with a message naming the setting when one is wrong.
    /// </summary>
    public static TelemetryPipeline Build(IConfiguration configuration, string serviceName)
    {
        var otlp = OtlpOf(configuration);

        var version = typeof(TelemetryPipeline).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName, serviceVersion: version);

        var meters = AddMetrics(Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource))
            // Every scrape sees current values (the default caches a scrape for 300 ms); scrapers are few.
            .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0);
        if (otlp is var (endpoint, protocol))
        {
            meters.AddOtlpExporter((exporter, reader) =>
            {
                Configure(exporter, endpoint, protocol, "v1/metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)OtlpExportInterval.TotalMilliseconds;
            });
        }

        return new TelemetryPipeline(meters.Build());
    }

    /// <summary>The metric sources and views every server process has (exporters aside).</summary>
    public static MeterProviderBuilder AddMetrics(MeterProviderBuilder builder) => builder
        .AddMeter("Streams.*")
        .AddRuntimeInstrumentation()
        .AddProcessInstrumentation()
        .AddAspNetCoreInstrumentation()
        .AddView(SegmentStoreMetrics.LogWriteDuration.Name, new ExplicitBucketHistogramConfiguration { Boundaries = SegmentStoreMetrics.LogWriteBuckets })
        .AddView(BookieMetrics.CommitDuration.Name, new ExplicitBucketHistogramConfiguration { Boundaries = BookieMetrics.CommitBuckets })
        .AddView(instrument => Renamed.TryGetValue(instrument.Name, out var name) ? new MetricStreamConfiguration { Name = name } : null);

    /// <summary>Disposing flushes: the last metrics go out over OTLP.</summary>
    public void Dispose() => Meters.Dispose();

    private static (Uri Endpoint, OtlpExportProtocol Protocol)? OtlpOf(IConfiguration configuration)
    {
        if (configuration["Telemetry:OtlpEndpoint"] is not { Length: > 0 } address)
        {
            return null;
        }

        if (!Uri.TryCreate(address, UriKind.Absolute, out var endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"Telemetry:OtlpEndpoint (--otlp-endpoint) must be an http:// or https:// address, not '{address}'.");
        }

        var protocol = configuration["Telemetry:OtlpProtocol"] switch
        {
            null or "" or "http/protobuf" => OtlpExportProtocol.HttpProtobuf,
            "grpc" => OtlpExportProtocol.Grpc,
            var other => throw new ArgumentException($"Telemetry:OtlpProtocol must be \"http/protobuf\" or \"grpc\", not '{other}'."),
        };
        return (endpoint, protocol);
    }

    private static void Configure(OtlpExporterOptions exporter, Uri endpoint, OtlpExportProtocol protocol, string signalPath)
    {
        exporter.Protocol = protocol;
        exporter.Endpoint = protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(endpoint.AbsoluteUri.EndsWith('/') ? endpoint : new Uri(endpoint.AbsoluteUri + "/"), signalPath)
            : endpoint;
    }
}
