using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;

namespace Streams.Common.Server.Metrics;

/// <summary>Pushes the "Streams.*" meters to an OpenTelemetry collector over OTLP, next to the /metrics endpoint.</summary>
internal static class OtlpMetrics
{
    /// <summary>
    /// Starts exporting to <paramref name="endpoint"/> (e.g. http://collector:4318 for OTLP/HTTP, or :4317 with gRPC).
    /// Dispose the result to flush and stop.
    /// </summary>
    public static IDisposable Start(Uri endpoint, OtlpExportProtocol protocol, TimeSpan interval, params string[] meters)
    {
        var builder = Sdk.CreateMeterProviderBuilder();
        foreach (var meter in meters)
        {
            builder.AddMeter(meter);
        }

        return builder
            .AddOtlpExporter((exporter, reader) =>
            {
                exporter.Protocol = protocol;
                exporter.Endpoint = protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath is "" or "/"
                    ? new Uri(endpoint, "v1/metrics")
                    : endpoint;
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)interval.TotalMilliseconds;
            })
            .Build();
    }
}
