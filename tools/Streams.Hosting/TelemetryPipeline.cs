using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Streams.Bookie;
using Streams.SegmentStore;

namespace Streams.Hosting;

/// <summary>
/// The OpenTelemetry SDK set up for a server process. Metrics: one meter provider over every "Streams.*" meter, the
/// .NET runtime, the process and ASP.NET Core (Kestrel, HTTP server requests), read by the Prometheus exporter behind
/// /metrics and, when Telemetry:OtlpEndpoint is set, pushed over OTLP too. Traces (only with an OTLP endpoint, so a
/// server without one creates no spans at all): a tracer provider over the Streams activity sources, ASP.NET Core and
/// Grpc.Net.Client, sampled by Telemetry:TraceSampleRatio, exported over OTLP. Names and units: docs/metrics.md.
/// </summary>
public sealed class TelemetryPipeline : IDisposable
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

    private readonly GcPauseSampler _gcPauses;

    private TelemetryPipeline(MeterProvider meters, TracerProvider? traces)
    {
        Meters = meters;
        Traces = traces;
        _gcPauses = new GcPauseSampler();
    }

    /// <summary>The meter provider; its Prometheus exporter answers /metrics.</summary>
    public MeterProvider Meters { get; }

    /// <summary>The tracer provider, or null without an OTLP endpoint.</summary>
    public TracerProvider? Traces { get; }

    /// <summary>
    /// Builds the pipeline. Reads Telemetry:OtlpEndpoint (the collector's base address, e.g. http://collector:4318;
    /// "v1/metrics" and "v1/traces" are appended for OTLP/HTTP), Telemetry:OtlpProtocol ("http/protobuf", the default,
    /// or "grpc", usually port 4317) and Telemetry:TraceSampleRatio (0 to 1, default 1: the share of traces started
    /// here that are kept; a trace started by a client keeps the client's decision). Throws with a message naming the
    /// setting when one is wrong.
    /// </summary>
    public static TelemetryPipeline Build(IConfiguration configuration, string serviceName)
    {
        var otlp = OtlpOf(configuration);
        var sampleRatio = configuration.GetValue("Telemetry:TraceSampleRatio", 1.0);
        if (sampleRatio is < 0 or > 1)
        {
            throw new ArgumentException($"Telemetry:TraceSampleRatio must be between 0 and 1 (is {sampleRatio}).");
        }

        var version = typeof(TelemetryPipeline).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName, serviceVersion: version);

        var meters = AddMetrics(Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource))
            // Every scrape sees current values (the default caches a scrape for 300 ms); scrapers are few.
            .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0);
        TracerProviderBuilder? traces = null;
        if (otlp is var (endpoint, protocol))
        {
            meters.AddOtlpExporter((exporter, reader) =>
            {
                Configure(exporter, endpoint, protocol, "v1/metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)OtlpExportInterval.TotalMilliseconds;
            });
            traces = AddTracing(Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource))
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(sampleRatio)))
                .AddOtlpExporter(exporter => Configure(exporter, endpoint, protocol, "v1/traces"));
        }

        return new TelemetryPipeline(meters.Build(), traces?.Build());
    }

    /// <summary>The metric sources and views every server process has (exporters aside).</summary>
    public static MeterProviderBuilder AddMetrics(MeterProviderBuilder builder) => builder
        .AddMeter("Streams.*")
        .AddRuntimeInstrumentation()
        .AddProcessInstrumentation()
        .AddAspNetCoreInstrumentation()
        .AddView(SegmentStoreMetrics.LogWriteDuration.Name, new ExplicitBucketHistogramConfiguration { Boundaries = SegmentStoreMetrics.LogWriteBuckets })
        .AddView(BookieMetrics.CommitDuration.Name, new ExplicitBucketHistogramConfiguration { Boundaries = BookieMetrics.CommitBuckets })
        .AddView(GcPauseSampler.Pause.Name, new ExplicitBucketHistogramConfiguration { Boundaries = GcPauseSampler.Buckets })
        .AddView(instrument => Renamed.TryGetValue(instrument.Name, out var name) ? new MetricStreamConfiguration { Name = name } : null);

    /// <summary>
    /// The span sources every server process has (exporter and sampler aside): the Streams components
    /// ("Streams.Controller", "Streams.SegmentStore", "Streams.Ledger", and "Streams.Client" for an SDK in the same
    /// process), the gRPC server side (ASP.NET Core; scrapes and probes left out) and the gRPC client side (controller
    /// → segment store).
    /// </summary>
    public static TracerProviderBuilder AddTracing(TracerProviderBuilder builder) => builder
        .AddSource("Streams.*")
        .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = context => !IsProbe(context.Request.Path))
        .AddGrpcClientInstrumentation();

    public void Dispose()
    {
        // Disposing flushes: the last metrics and spans go out over OTLP.
        _gcPauses.Dispose();
        Traces?.Dispose();
        Meters.Dispose();
    }

    private static bool IsProbe(PathString path) => path == "/metrics" || path == "/healthz" || path == "/readyz";

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
