using Contract = Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>
/// What a reader group reads and how its readers' sessions are kept. Each stream is read from its start cut (without
/// one, its current head) to its end cut (without one, unbounded: to a sealed stream's end).
/// </summary>
public sealed record ReaderGroupConfig
{
    /// <summary>The streams the group reads, each as "scope/stream".</summary>
    public required IReadOnlyList<string> Streams { get; init; }

    /// <summary>
    /// Where the group starts reading, at most one cut per stream of <see cref="Streams"/> (e.g. a checkpoint's, or
    /// <see cref="StreamManager.GetStreamCutAsync"/>); a stream without one is read from its current head. Empty by default.
    /// </summary>
    public IReadOnlyList<StreamCut> StartCuts { get; init; } = [];

    /// <summary>
    /// Where the group stops reading, at most one cut per stream of <see cref="Streams"/>: each segment up to its offset
    /// (exclusive). A stream without one is read without bound. The group ends once every segment is read to its end
    /// cut or, in a sealed stream, to its end. Empty by default.
    /// </summary>
    public IReadOnlyList<StreamCut> EndCuts { get; init; } = [];

    /// <summary>How often readers must report; default 3 s. A reader calls the controller at a third of it.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>A reader silent this long loses its segments to the others; default 30 s. Must exceed the heartbeat interval.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Automatic checkpoints this often (at least 1 s), taken by the leading controller; null (default): none.</summary>
    public TimeSpan? CheckpointInterval { get; init; }

    /// <summary>
    /// Whether the group's latest checkpoint holds back the retention of its streams whose retention follows
    /// consumption (<see cref="RetentionPolicy.FollowingConsumption"/>): data is kept until the group checkpointed
    /// past it. Default false.
    /// </summary>
    public bool RetentionFollowsCheckpoints { get; init; }

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

        if (CheckpointInterval is { } interval && (interval < TimeSpan.FromSeconds(1) || interval > TimeSpan.FromDays(1)))
        {
            throw new ArgumentException($"CheckpointInterval must be between 1 s and a day, or null for none (is {interval}).");
        }

        var config = new Contract.ReaderGroupConfig
        {
            HeartbeatIntervalMs = (int)HeartbeatInterval.TotalMilliseconds,
            SessionTimeoutMs = (int)SessionTimeout.TotalMilliseconds,
            CheckpointIntervalMs = CheckpointInterval is { } every ? (int)every.TotalMilliseconds : 0,
            Retention = RetentionFollowsCheckpoints ? Contract.GroupRetention.AtLastCheckpoint : Contract.GroupRetention.None,
        };
        var starts = CutsByStream(StartCuts, nameof(StartCuts));
        var ends = CutsByStream(EndCuts, nameof(EndCuts));
        foreach (var name in Streams)
        {
            var parts = (name ?? string.Empty).Split('/');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                throw new ArgumentException($"Stream '{name}' must be named \"scope/stream\".");
            }

            var stream = new Contract.ReaderGroupStream { Scope = parts[0], Stream = parts[1] };
            if (starts.Remove(name!, out var start))
            {
                stream.Start = start.ToContract();
            }

            if (ends.Remove(name!, out var end))
            {
                CheckOrder(start, end);
                stream.End = end.ToContract();
            }

            config.Streams.Add(stream);
        }

        if (starts.Keys.Concat(ends.Keys).FirstOrDefault() is { } stray)
        {
            throw new ArgumentException($"A cut names stream '{stray}', which the group does not read ({string.Join(", ", Streams)}): add it to Streams or drop the cut.");
        }

        return config;
    }

    /// <summary>The SDK form of a configuration the controller returned.</summary>
    internal static ReaderGroupConfig From(Contract.ReaderGroupConfig? config)
    {
        var streams = config?.Streams ?? [];
        return new()
        {
            Streams = [.. streams.Select(s => $"{s.Scope}/{s.Stream}")],
            // A cut inside a group's stream names that stream, whatever the controller filled in.
            StartCuts = [.. streams.Where(s => s.Start is not null).Select(s => StreamCut.From(s.Start) with { Scope = s.Scope, Stream = s.Stream })],
            EndCuts = [.. streams.Where(s => s.End is not null).Select(s => StreamCut.From(s.End) with { Scope = s.Scope, Stream = s.Stream })],
            HeartbeatInterval = TimeSpan.FromMilliseconds(config is { HeartbeatIntervalMs: > 0 } ? config.HeartbeatIntervalMs : 3000),
            SessionTimeout = TimeSpan.FromMilliseconds(config is { SessionTimeoutMs: > 0 } ? config.SessionTimeoutMs : 30000),
            CheckpointInterval = config is { CheckpointIntervalMs: > 0 } ? TimeSpan.FromMilliseconds(config.CheckpointIntervalMs) : null,
            RetentionFollowsCheckpoints = config?.Retention == Contract.GroupRetention.AtLastCheckpoint,
        };
    }

    /// <summary>
    /// Each cut by "scope/stream", checking that none is null, none repeats a stream and no offset is negative; throws
    /// <see cref="ArgumentException"/> naming <paramref name="what"/> otherwise.
    /// </summary>
    internal static Dictionary<string, StreamCut> CutsByStream(IReadOnlyList<StreamCut>? cuts, string what)
    {
        var byStream = new Dictionary<string, StreamCut>(StringComparer.Ordinal);
        foreach (var cut in cuts ?? [])
        {
            if (cut?.Positions is null)
            {
                throw new ArgumentException($"{what} holds a null cut or one without positions.");
            }

            if (!byStream.TryAdd(cut.StreamName, cut))
            {
                throw new ArgumentException($"{what} holds two cuts of stream '{cut.StreamName}': give at most one per stream.");
            }

            foreach (var (segment, offset) in cut.Positions)
            {
                if (offset < 0)
                {
                    throw new ArgumentException($"{what}: the cut of '{cut.StreamName}' puts segment {segment} at offset {offset}; offsets are 0 or more.");
                }
            }
        }

        return byStream;
    }

    /// <summary>A segment in both cuts of a stream must not end before it starts.</summary>
    private static void CheckOrder(StreamCut? start, StreamCut end)
    {
        foreach (var (segment, offset) in end.Positions)
        {
            if (start is not null && start.Positions.TryGetValue(segment, out var from) && offset < from)
            {
                throw new ArgumentException($"The end cut of '{end.StreamName}' puts segment {segment} at {offset}, before its start cut's {from}.");
            }
        }
    }
}
