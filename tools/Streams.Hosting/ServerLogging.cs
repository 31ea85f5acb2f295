using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Streams.Hosting;

/// <summary>Console logging for server roles: one line per entry, UTC timestamps, levels from configuration.</summary>
public static class ServerLogging
{
    /// <summary>The logger factory of a role; it starts by warning of every deprecated setting in use.</summary>
    public static ILoggerFactory Create(IConfiguration configuration, LogLevel minimum)
    {
        var factory = LoggerFactory.Create(builder =>
        {
            builder.AddConfiguration(configuration.GetSection("Logging"));
            builder.SetMinimumLevel(minimum);
            // Readiness checks run every second and are reported by /readyz and the gRPC health service; the health
            // library would log every unhealthy result as an error.
            builder.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None);
            builder.AddSimpleConsole(options =>
            {
                options.SingleLine = true;
                options.UseUtcTimestamp = true;
                options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                options.ColorBehavior = LoggerColorBehavior.Disabled;
            });
        });
        var logger = factory.CreateLogger("Streams.Configuration");
        foreach (var deprecation in ServerConfiguration.Deprecations(configuration))
        {
            logger.LogWarning("{Deprecation}", deprecation);
        }

        return factory;
    }
}
