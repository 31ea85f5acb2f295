using Microsoft.Extensions.Configuration;
using OpenTelemetry.Metrics;

namespace Streams.Hosting;

/// <summary>
/// A server role's handle on its process's <see cref="TelemetryPipeline"/>. There is one pipeline per process: the
/// first role to start builds it from its configuration, roles started later in the same process share it (the tests
/// run several standalones in one process; a deployed process runs one role), and it is disposed, flushing OTLP, with
/// the last handle. The handle also keeps the role's observers (gauges over its state) and disposes them first.
/// </summary>
internal sealed class RoleTelemetry : IDisposable
{
    private static readonly Lock Gate = new();
    private static TelemetryPipeline? _shared;
    private static int _handles;
    private readonly List<IDisposable> _observers = [];
    private TelemetryPipeline? _pipeline;

    private RoleTelemetry(TelemetryPipeline pipeline)
    {
        _pipeline = pipeline;
    }

    /// <summary>The process's meter provider, whose Prometheus exporter answers /metrics.</summary>
    public MeterProvider Meters => (_pipeline ?? throw new ObjectDisposedException(nameof(RoleTelemetry))).Meters;

    /// <param name="configuration">The Telemetry section (see <see cref="TelemetryPipeline.Build"/>), read by the first role only.</param>
    /// <param name="role">The role ("standalone", "controller", ...): the service is named "streams-{role}".</param>
    public static RoleTelemetry Start(IConfiguration configuration, string role)
    {
        lock (Gate)
        {
            _shared ??= TelemetryPipeline.Build(configuration, "streams-" + role);
            _handles++;
            return new RoleTelemetry(_shared);
        }
    }

    /// <summary>Keeps <paramref name="observer"/> (e.g. the gauges of a store) until this handle is disposed.</summary>
    public void Own(IDisposable observer) => _observers.Add(observer);

    public void Dispose()
    {
        foreach (var observer in _observers)
        {
            observer.Dispose();
        }

        _observers.Clear();
        lock (Gate)
        {
            if (_pipeline is null)
            {
                return;
            }

            _pipeline = null;
            if (--_handles == 0)
            {
                _shared!.Dispose();
                _shared = null;
            }
        }
    }
}
