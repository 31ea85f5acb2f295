using Contract = Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>
/// What a reader group reads and how its readers' sessions are kept. Every stream is read from its current head to
/// its end (a sealed stream's end, or unbounded); start and end cuts, automatic checkpoints and retention tied to the
/// group are not offered by the SDK yet (the wire contract has them), so such a group always takes their defaults.
/// </summary>
public sealed record ReaderGroupConfig
{
    /// <summary>The streams the group reads, each as "scope/stream".</summary>
    public required IReadOnlyList<string> Streams { get; init; }

    /// <summary>How often readers must report; default 3 s. A reader calls the controller at a third of it.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>A reader silent this long loses its segments to the others; default 30 s. Must exceed the heartbeat interval.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A configuration reading <paramref name="streams"/> ("scope/stream" each) with the default timings.</summary>
    public static ReaderGroupConfig For(params string[] streams) => new() { Streams = streams };

    /// <summary>The wire form; throws <see cref="ArgumentException"/> saying what to change if the configuration is not valid.</summary>
    internal Contract.ReaderGroupConfig ToContract()
    {
        if (Streams is null || Streams.Count == 0)
        {
            throw new ArgumentException("A reader group reads at least one stream: give Streams as \"scope/stream\".");
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(1) || SessionTimeout <= HeartbeatInterval || SessionTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentException($"HeartbeatInterval ({HeartbeatInterval}) must be positive and below SessionTimeout ({SessionTimeout}).");
        }

        var config = new Contract.ReaderGroupConfig
        {
            HeartbeatIntervalMs = (int)HeartbeatInterval.TotalMilliseconds,
            SessionTimeoutMs = (int)SessionTimeout.TotalMilliseconds,
        };
        foreach (var name in Streams)
        {
            var parts = (name ?? string.Empty).Split('/');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                throw new ArgumentException($"Stream '{name}' must be named \"scope/stream\".");
            }

            config.Streams.Add(new Contract.ReaderGroupStream { Scope = parts[0], Stream = parts[1] });
        }

        return config;
    }

    /// <summary>The SDK form of a configuration the controller returned.</summary>
    internal static ReaderGroupConfig From(Contract.ReaderGroupConfig? config) => new()
    {
        Streams = [.. (config?.Streams ?? []).Select(s => $"{s.Scope}/{s.Stream}")],
        HeartbeatInterval = TimeSpan.FromMilliseconds(config is { HeartbeatIntervalMs: > 0 } ? config.HeartbeatIntervalMs : 3000),
        SessionTimeout = TimeSpan.FromMilliseconds(config is { SessionTimeoutMs: > 0 } ? config.SessionTimeoutMs : 30000),
    };
}
