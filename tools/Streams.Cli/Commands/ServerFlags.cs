using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Streams.Cli.Commands;

/// <summary>The flags every server role takes, mapped onto configuration keys (flags win over files and environment).</summary>
internal sealed class ServerFlags
{
    private readonly List<(Option Option, string Key, Func<object, string>? Format)> _mapped = [];

    public ServerFlags(int grpcPort, int? dataPort, int metricsPort)
    {
        Config = new Option<string?>("--config") { Description = "A JSON settings file (same shape as appsettings.json)." };
        LogLevel = new Option<LogLevel>("--log-level") { Description = "Minimum log level.", DefaultValueFactory = _ => Microsoft.Extensions.Logging.LogLevel.Information };
        Map(new Option<string?>("--host") { Description = "Address to listen on (default 127.0.0.1)." }, "Server:Host");
        Map(new Option<string?>("--advertised-host") { Description = "Address others use to reach this server (default: --host)." }, "Server:AdvertisedHost");
        Map(new Option<int?>("--port") { Description = $"gRPC port (default {grpcPort})." }, "Server:GrpcPort", grpcPort);
        if (dataPort is { } data)
        {
            Map(new Option<int?>("--data-port") { Description = $"Raw data carrier port (default {data})." }, "Server:DataPort", data);
        }

        Map(new Option<int?>("--metrics-port") { Description = $"HTTP port of /metrics, /healthz and /readyz (default {metricsPort})." }, "Server:MetricsPort", metricsPort);
        Map(new Option<string?>("--tls-cert") { Description = "Certificate (.pfx or PEM) for TLS on the gRPC port." }, "Server:TlsCertificate");
        Map(new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert, or the .pfx password." }, "Server:TlsKey");
        Map(new Option<string?>("--otlp-endpoint") { Description = "Push metrics and traces to this OpenTelemetry collector (OTLP/HTTP base address, e.g. http://collector:4318)." }, "Telemetry:OtlpEndpoint");
    }

    public Option<string?> Config { get; }

    public Option<LogLevel> LogLevel { get; }

    /// <summary>
    /// Adds a role-specific flag that sets <paramref name="key"/>, its value written in the key's form by
    /// <paramref name="format"/> when given (a flag in MiB setting a size, for one).
    /// </summary>
    public ServerFlags Map(Option option, string key, object? defaultValue = null, Func<object, string>? format = null)
    {
        _mapped.Add((option, key, format));
        if (defaultValue is not null)
        {
            _defaults[key] = Convert.ToString(defaultValue, CultureInfo.InvariantCulture);
        }

        return this;
    }

    /// <summary>Writes a flag's whole MiB as a size setting.</summary>
    public static string MiB(object value) => Convert.ToString(value, CultureInfo.InvariantCulture) + "MiB";

    /// <summary>Writes a flag's milliseconds as a duration setting.</summary>
    public static string Milliseconds(object value) =>
        TimeSpan.FromMilliseconds(Convert.ToDouble(value, CultureInfo.InvariantCulture)).ToString("c", CultureInfo.InvariantCulture);

    public void AddTo(Command command)
    {
        command.Options.Add(Config);
        command.Options.Add(LogLevel);
        foreach (var (option, _, _) in _mapped)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The role's defaults (ports), below every other configuration source.</summary>
    public IReadOnlyDictionary<string, string?> Defaults => _defaults;

    /// <summary>Every flag given on the command line, as configuration keys.</summary>
    public Dictionary<string, string?> Values(ParseResult parse)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (option, key, format) in _mapped)
        {
            var result = parse.GetResult(option);
            if (result is { Implicit: false } && result.GetValueOrDefault<object?>() is { } value)
            {
                values[key] = format is null ? Convert.ToString(value, CultureInfo.InvariantCulture) : format(value);
            }
        }

        return values;
    }

    private readonly Dictionary<string, string?> _defaults = new(StringComparer.OrdinalIgnoreCase);
}
