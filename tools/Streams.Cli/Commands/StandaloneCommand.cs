using System.CommandLine;
using Microsoft.Extensions.Logging;
using Streams.Cli.Hosting;

namespace Streams.Cli.Commands;

/// <summary><c>streams standalone</c>: every role in one durable process.</summary>
internal static class StandaloneCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory (default ./streams-data)." };
        var host = new Option<string?>("--host") { Description = "Address to listen on (default 127.0.0.1)." };
        var port = new Option<int?>("--port") { Description = "gRPC port: the controller and every API (default 9090)." };
        var dataPort = new Option<int?>("--data-port") { Description = "Raw data carrier port (default 9091)." };
        var metricsPort = new Option<int?>("--metrics-port") { Description = "HTTP port of /metrics and /healthz (default 9092)." };
        var containers = new Option<int?>("--containers") { Description = "Segment containers (default 4; fixed once data exists)." };
        var cacheMb = new Option<int?>("--cache-mb") { Description = "Read cache size in MiB (default 256)." };
        var config = new Option<string?>("--config") { Description = "A JSON settings file (same shape as appsettings.json)." };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "Certificate (.pfx or PEM) for TLS on the gRPC port; clients then use https://." };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert, or the .pfx password." };
        var otlp = new Option<string?>("--otlp-endpoint") { Description = "Also push metrics to this OpenTelemetry collector (OTLP/HTTP, e.g. http://collector:4318)." };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Minimum log level.", DefaultValueFactory = _ => LogLevel.Information };

        var command = new Command("standalone", "Run the controller and a segment store in one process, durable on local disk.")
        {
            dataDir, host, port, dataPort, metricsPort, containers, cacheMb, config, tlsCert, tlsKey, otlp, logLevel,
        };
        command.SetAction((parse, cancellationToken) => CliSupport.RunAsync(parse, async () =>
        {
            var flags = new Dictionary<string, string?>
            {
                ["DataDirectory"] = parse.GetValue(dataDir),
                ["Server:Host"] = parse.GetValue(host),
                ["Server:GrpcPort"] = parse.GetValue(port)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Server:DataPort"] = parse.GetValue(dataPort)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Server:MetricsPort"] = parse.GetValue(metricsPort)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["SegmentStore:ContainerCount"] = parse.GetValue(containers)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["SegmentStore:CacheSizeMb"] = parse.GetValue(cacheMb)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Server:TlsCertificate"] = parse.GetValue(tlsCert),
                ["Server:TlsKey"] = parse.GetValue(tlsKey),
                ["Telemetry:OtlpEndpoint"] = parse.GetValue(otlp),
            };
            var configuration = ServerConfiguration.Build(parse.GetValue(config), flags);
            using var loggerFactory = ServerLogging.Create(configuration, parse.GetValue(logLevel));
            await using var server = await StandaloneHost.StartAsync(configuration, loggerFactory, cancellationToken);
            var s = server.Settings;
            Console.WriteLine($"Streams standalone is ready: controller {s.GrpcUri}, data {s.Advertised}:{s.DataPort}, metrics http://{s.Advertised}:{s.MetricsPort}/metrics, data in {server.DataDirectory}");
            await server.WaitForShutdownAsync(cancellationToken);
            return 0;
        }));
        return command;
    }
}
