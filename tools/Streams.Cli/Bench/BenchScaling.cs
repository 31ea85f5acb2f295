using System.Globalization;
using Streams.Client;

namespace Streams.Cli.Bench;

/// <summary>How the bench stream scales: a fixed segment count, or a target rate per segment.</summary>
internal enum BenchScalingKind
{
    Fixed,
    EventsPerSecond,
    KBytesPerSecond,
}

/// <summary>
/// The bench stream's scaling policy, from <c>--scaling</c>: <c>fixed:N</c> (N segments), <c>events:N</c> (a target of N
/// events/s per segment) or <c>kbytes:N</c> (N KiB/s per segment). A rate-scaled stream starts with <c>--segments</c>.
/// </summary>
internal sealed record BenchScaling(BenchScalingKind Kind, int Target)
{
    /// <summary>Parses <c>KIND:N</c> with N a positive integer; null and an explanation for anything else.</summary>
    public static BenchScaling? Parse(string text, out string? error)
    {
        error = null;
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? text : text[..colon];
        BenchScalingKind? parsed = kind.ToLowerInvariant() switch
        {
            "fixed" => BenchScalingKind.Fixed,
            "events" => BenchScalingKind.EventsPerSecond,
            "kbytes" => BenchScalingKind.KBytesPerSecond,
            _ => null,
        };
        if (parsed is null)
        {
            error = $"--scaling '{text}': the kind is fixed, events or kbytes (fixed:N segments, events:N or kbytes:N per segment per second).";
            return null;
        }

        if (colon < 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var target) || target < 1)
        {
            error = $"--scaling '{text}': give a positive whole number after the colon, such as {kind.ToLowerInvariant()}:1000.";
            return null;
        }

        return new BenchScaling(parsed.Value, target);
    }

    /// <summary>The segment count the stream is created with: N for fixed:N, otherwise <paramref name="initialSegments"/>.</summary>
    public int InitialSegments(int initialSegments) => Kind == BenchScalingKind.Fixed ? Target : initialSegments;

    /// <summary>
    /// The stream configuration for this policy, starting at <paramref name="initialSegments"/> segments.
    /// </summary>
    public StreamConfig ToStreamConfig(int initialSegments)
    {
        // A rate-scaled stream starts at its minimum: the initial count, from which it splits and merges back.
        var max = Math.Max(64, initialSegments);
        return Kind switch
        {
            BenchScalingKind.Fixed => StreamConfig.Fixed(Target),
            BenchScalingKind.EventsPerSecond => new StreamConfig { Scaling = ScalingPolicy.ByEventRate(Target, minSegments: initialSegments, maxSegments: max) },
            _ => new StreamConfig { Scaling = ScalingPolicy.ByKBytesRate(Target, minSegments: initialSegments, maxSegments: max) },
        };
    }

    public override string ToString() => Kind switch
    {
        BenchScalingKind.Fixed => string.Create(CultureInfo.InvariantCulture, $"fixed:{Target}"),
        BenchScalingKind.EventsPerSecond => string.Create(CultureInfo.InvariantCulture, $"events:{Target}"),
        _ => string.Create(CultureInfo.InvariantCulture, $"kbytes:{Target}"),
    };
}
