using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Streams.Hosting;

/// <summary>
/// Server configuration, later sources winning: the role's defaults (its ports), appsettings.json next to the binary,
/// an optional --config file, environment variables (STREAMS__SECTION__KEY, e.g. STREAMS__SEGMENTSTORE__CACHESIZE=512MiB),
/// then command-line flags.
/// Sizes are written with a binary unit ("256MiB", a plain number is bytes) and durations as TimeSpans ("00:00:30");
/// no key carries a unit in its name. Keys of earlier releases (CacheSizeMb, Tier2FlushAgeMs, ...) are still read,
/// converted to their successors when those are not set, and named in a warning at start.
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

        var configuration = builder
            .AddEnvironmentVariables("STREAMS__")
            .AddInMemoryCollection(flags.Where(f => f.Value is not null))
            .Build();
        // An old key converts unless its successor is set by a source that wins over the old key's (so an old
        // environment variable still beats the successor's value in appsettings.json).
        var providers = configuration.Providers.ToList();
        var converted = new Dictionary<string, string?>();
        foreach (var (old, successor, convert) in Renamed)
        {
            if (configuration[old] is { } value && WinningSource(providers, old) > WinningSource(providers, successor))
            {
                converted[successor] = convert(value, old);
            }
        }

        return converted.Count == 0 ? configuration : new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(converted).Build();
    }

    /// <summary>The index of the last (winning) source that sets <paramref name="key"/>, or -1.</summary>
    private static int WinningSource(List<IConfigurationProvider> providers, string key) =>
        providers.FindLastIndex(p => p.TryGet(key, out var value) && value is not null);

    /// <summary>A warning for each key of an earlier release that is set, naming its successor.</summary>
    public static IEnumerable<string> Deprecations(IConfiguration configuration)
    {
        foreach (var (old, successor, _) in Renamed)
        {
            if (configuration[old] is { } value)
            {
                yield return $"Setting {old}={value} is deprecated: use {successor} (in effect: {successor}={configuration[successor]}).";
            }
        }
    }

    /// <summary>Keys of earlier releases, each with its successor and how its value converts.</summary>
    private static readonly (string Old, string Successor, Func<string, string, string> Convert)[] Renamed =
    [
        ("SegmentStore:CacheSizeMb", "SegmentStore:CacheSize", Unit("MiB")),
        ("SegmentStore:MaxFrameSizeKb", "SegmentStore:MaxFrameSize", Unit("KiB")),
        ("SegmentStore:MaxReadSizeKb", "SegmentStore:MaxReadSize", Unit("KiB")),
        ("SegmentStore:LedgerRolloverMb", "SegmentStore:LedgerRolloverSize", Unit("MiB")),
        ("SegmentStore:Tier2FlushSizeKb", "SegmentStore:Tier2FlushSize", Unit("KiB")),
        ("SegmentStore:Tier2FlushAgeMs", "SegmentStore:Tier2FlushAge", Duration(TimeSpan.FromMilliseconds)),
        ("SegmentStore:Tier2MaxChunkMb", "SegmentStore:Tier2MaxChunkSize", Unit("MiB")),
        ("SegmentStore:Tier2CacheMb", "SegmentStore:Tier2CacheSize", Unit("MiB")),
        ("SegmentStore:Tier1BudgetMb", "SegmentStore:Tier1Budget", Unit("MiB")),
        ("SegmentStore:Tier1BudgetTimeoutSeconds", "SegmentStore:Tier1BudgetTimeout", Duration(TimeSpan.FromSeconds)),
        ("SegmentStore:CheckpointEveryKb", "SegmentStore:CheckpointEvery", Unit("KiB")),
        ("SegmentStore:Tier2OrphanSweepMs", "SegmentStore:Tier2OrphanSweepInterval", Duration(TimeSpan.FromMilliseconds)),
        ("SegmentStore:WriterExpiryMinutes", "SegmentStore:WriterExpiry", Duration(TimeSpan.FromMinutes)),
        ("ZooKeeper:SessionTimeoutMs", "ZooKeeper:SessionTimeout", Duration(TimeSpan.FromMilliseconds)),
        // One request timeout became a deadline for adds and one for reads.
        ("Ledger:RequestTimeout", "Ledger:AddTimeout", static (value, _) => value),
        ("Ledger:RequestTimeout", "Ledger:ReadTimeout", static (value, _) => value),
        ("Bookie:JournalSegmentSizeBits", "Bookie:JournalSegmentSize", (value, key) => (1L << (int)Number(value, key, 62)).ToString(CultureInfo.InvariantCulture)),
    ];

    private static Func<string, string, string> Unit(string unit) =>
        (value, key) => Number(value, key, long.MaxValue >> 40).ToString(CultureInfo.InvariantCulture) + unit;

    private static Func<string, string, string> Duration(Func<double, TimeSpan> of) =>
        (value, key) => of(Number(value, key, int.MaxValue)).ToString("c", CultureInfo.InvariantCulture);

    private static long Number(string value, string key, long max) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number <= max
            ? number
            : throw new ArgumentException($"{key} must be a whole number (is '{value}').");

    public static T Bind<T>(IConfiguration configuration, string section)
        where T : new() =>
        configuration.GetSection(section).Get<T>() ?? new T();
}
