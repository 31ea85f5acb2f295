using System.Globalization;
using Microsoft.Extensions.Configuration;
using Streams.Controller.Scaling;

namespace Streams.Hosting;

/// <summary>
/// Reads the controller's <see cref="ScalingSettings"/> from the "Scaling" section. The keys are milliseconds, as the
/// segment stores' keys of the same section are (TickMs, WindowsMs, ReportIntervalMs): one section, one convention.
/// <c>WindowsMs</c> is a comma-separated list ("120000,300000,600000,1200000") or a JSON array.
/// </summary>
public static class ScalingConfiguration
{
    public static ScalingSettings Read(IConfiguration configuration)
    {
        var section = configuration.GetSection("Scaling");
        var defaults = new ScalingSettings();
        var settings = new ScalingSettings
        {
            EvaluateIntervalMs = Milliseconds(section, nameof(ScalingSettings.EvaluateIntervalMs), defaults.EvaluateIntervalMs),
            SplitCooldownMs = Milliseconds(section, nameof(ScalingSettings.SplitCooldownMs), defaults.SplitCooldownMs),
            MergeCooldownMs = Milliseconds(section, nameof(ScalingSettings.MergeCooldownMs), defaults.MergeCooldownMs),
            ReportIntervalMs = Milliseconds(section, nameof(ScalingSettings.ReportIntervalMs), defaults.ReportIntervalMs),
            WindowsMs = Windows(section) ?? defaults.WindowsMs,
        };
        settings.Validate();
        return settings;
    }

    private static long Milliseconds(IConfigurationSection section, string key, long fallback) =>
        section[key] is not { } text ? fallback
            : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value
            : throw new ArgumentException($"Scaling:{key} must be a whole number of milliseconds (is '{text}').");

    private static long[]? Windows(IConfigurationSection section)
    {
        var windows = section.GetSection(nameof(ScalingSettings.WindowsMs));
        var parts = windows.Value is { } list
            ? list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : [.. windows.GetChildren().OrderBy(c => int.TryParse(c.Key, CultureInfo.InvariantCulture, out var i) ? i : int.MaxValue).Select(c => c.Value ?? string.Empty)];
        if (parts.Length == 0)
        {
            return null;
        }

        return [.. parts.Select(p => long.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? ms
            : throw new ArgumentException($"Scaling:WindowsMs must list whole numbers of milliseconds, e.g. 120000,300000,600000,1200000 (has '{p}')."))];
    }
}
