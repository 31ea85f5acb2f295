using Microsoft.Extensions.Configuration;

namespace Streams.Hosting;

/// <summary>
/// Server configuration, later sources winning: the role's defaults (its ports), appsettings.json next to the binary,
/// an optional --config file, environment variables (STREAMS__SECTION__KEY, e.g. STREAMS__SEGMENTSTORE__CACHESIZEMB),
/// then command-line flags.
/// </summary>
public static class ServerConfiguration
{
    public static IConfiguration Build(string? configFile, IEnumerable<KeyValuePair<string, string?>> flags, IEnumerable<KeyValuePair<string, string?>>? defaults = null)
    {
        var builder = new ConfigurationBuilder()
            .AddInMemoryCollection(defaults ?? [])
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true);
        if (!string.IsNullOrEmpty(configFile))
        {
            if (!File.Exists(configFile))
            {
                throw new ArgumentException($"Configuration file {configFile} does not exist.");
            }

            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }

        return builder
            .AddEnvironmentVariables("STREAMS__")
            .AddInMemoryCollection(flags.Where(f => f.Value is not null))
            .Build();
    }

    public static T Bind<T>(IConfiguration configuration, string section)
        where T : new() =>
        configuration.GetSection(section).Get<T>() ?? new T();
}
