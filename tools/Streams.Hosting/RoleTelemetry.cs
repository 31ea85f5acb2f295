using Microsoft.Extensions.Configuration;
using OpenTelemetry.Exporter;
using Streams.Common.Server.Metrics;

namespace Streams.Hosting;

/// <summary>
/// A role's metrics: always /metrics (Prometheus text), and pushed to an OpenTelemetry collector as well when
/// Telemetry:OtlpEndpoint (--otlp-endpoint) is set.
/// </summary>
internal sealed class RoleTelemetry : IDisposable
{
    private readonly IDisposable? _otlp;

    private RoleTelemetry(PrometheusMetrics prometheus, IDisposable? otlp)
    {
        Prometheus = prometheus;
        _otlp = otlp;
    }

    public PrometheusMetrics Prometheus { get; }

    /// <param name="configuration">Where Telemetry:OtlpEndpoint and Telemetry:OtlpProtocol ("grpc" or "http/protobuf") come from.</param>
    /// <param name="meters">The meters the role publishes.</param>
    public static RoleTelemetry Start(IConfiguration configuration, params string[] meters)
    {
        var otlp = configuration["Telemetry:OtlpEndpoint"] is { Length: > 0 } endpoint
            ? OtlpMetrics.Start(
                new Uri(endpoint),
                configuration["Telemetry:OtlpProtocol"] == "grpc" ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf,
                TimeSpan.FromSeconds(15),
                meters)
            : null;
        return new RoleTelemetry(new PrometheusMetrics(), otlp);
    }

    public void Dispose()
    {
        _otlp?.Dispose();
        Prometheus.Dispose();
    }
}
