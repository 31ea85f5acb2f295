using System.CommandLine;
using System.Globalization;
using Streams.Client;

namespace Streams.Cli.Commands;

/// <summary>
/// Scaling on the command line: the <c>--scaling</c> options of <c>stream create</c> and <c>stream update</c>,
/// <c>stream scale --split/--merge</c>, and what <c>stream describe</c> prints about scaling.
/// </summary>
internal static class ScaleCommands
{
    /// <summary>Scale events <c>describe</c> prints.</summary>
    private const int ShownHistory = 5;

    /// <summary>The options that make a scaling policy.</summary>
    internal sealed record PolicyOptions(Option<string?> Scaling, Option<int?> ScaleFactor, Option<int?> MinSegments, Option<int?> MaxSegments)
    {
        public static PolicyOptions Create() => new(
            new Option<string?>("--scaling") { Description = "fixed:N | events:TARGET (events/s per segment) | kbytes:TARGET (KiB/s per segment)." },
            new Option<int?>("--scale-factor") { Description = "Rate policies: the most segments one split makes (default 2)." },
            new Option<int?>("--min-segments") { Description = "Rate policies: the fewest segments (default 1)." },
            new Option<int?>("--max-segments") { Description = "Rate policies: the most segments (default 64)." });

        public IEnumerable<Option> All => [Scaling, ScaleFactor, MinSegments, MaxSegments];

        /// <summary>The policy asked for, or null when <c>--scaling</c> is absent.</summary>
        public ScalingPolicy? Parse(ParseResult parse)
        {
            var rateOnly = parse.GetValue(ScaleFactor) is not null || parse.GetValue(MinSegments) is not null || parse.GetValue(MaxSegments) is not null;
            if (parse.GetValue(Scaling) is not { } text)
            {
                return rateOnly ? throw new CliException("--scale-factor, --min-segments and --max-segments go with --scaling events:TARGET or kbytes:TARGET.") : null;
            }

            return ParsePolicy(text, parse.GetValue(ScaleFactor), parse.GetValue(MinSegments), parse.GetValue(MaxSegments));
        }
    }

    /// <summary>"fixed:4", "events:1000", "kbytes:512", with a rate policy's optional bounds.</summary>
    internal static ScalingPolicy ParsePolicy(string text, int? scaleFactor, int? minSegments, int? maxSegments)
    {
        var parts = text.Split(':', 2, StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 1)
        {
            throw new CliException($"'{text}' is not a scaling policy: use fixed:N, events:TARGET or kbytes:TARGET with a positive whole number.");
        }

        var kind = parts[0].ToLowerInvariant();
        if (kind == "fixed")
        {
            return scaleFactor is null && minSegments is null && maxSegments is null
                ? ScalingPolicy.Fixed(value)
                : throw new CliException("--scale-factor, --min-segments and --max-segments apply to rate policies (events:TARGET, kbytes:TARGET), not fixed:N.");
        }

        var factor = scaleFactor ?? 2;
        var min = minSegments ?? 1;
        var max = maxSegments ?? 64;
        if (factor < 2 || min < 1 || max < min)
        {
            throw new CliException($"A rate policy needs --scale-factor >= 2 and 1 <= --min-segments <= --max-segments (got {factor}, {min}, {max}).");
        }

        return kind switch
        {
            "events" => ScalingPolicy.ByEventRate(value, factor, min, max),
            "kbytes" => ScalingPolicy.ByKBytesRate(value, factor, min, max),
            _ => throw new CliException($"'{parts[0]}' is not a scaling kind: use fixed, events or kbytes."),
        };
    }

    /// <summary><c>streams stream scale S/T --split SEGMENT[:PIECES] | --merge SEGMENT,SEGMENT</c>.</summary>
    public static Command Scale()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var split = new Option<string?>("--split") { Description = "SEGMENT[:PIECES]: split a segment of the current epoch into PIECES (default 2) equal key ranges. SEGMENT is its number or its id as `describe` prints them." };
        var merge = new Option<string?>("--merge") { Description = "SEGMENT,SEGMENT[,...]: merge adjacent segments of the current epoch into one." };
        var command = new Command("scale", "Split or merge segments now: seals them and creates successors covering the same keys (a new epoch).") { name, split, merge };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            var (splitText, mergeText) = (parse.GetValue(split), parse.GetValue(merge));
            if (splitText is null == mergeText is null)
            {
                throw new CliException("Give one of --split SEGMENT[:PIECES] or --merge SEGMENT,SEGMENT.");
            }

            await using var client = CliSupport.CreateClient(parse);
            var before = await client.Streams.DescribeStreamAsync(scope, stream, ct);
            var (seal, ranges) = splitText is not null ? PlanSplit(before, splitText) : PlanMerge(before, mergeText!);
            var after = await client.Streams.ScaleStreamAsync(scope, stream, seal, ranges, ct);
            Console.WriteLine($"Scaled {scope}/{stream} to epoch {after.Epoch}: sealed {string.Join(", ", seal.Select(id => Label(before, id)))}; created {string.Join(", ", after.History.LastOrDefault()?.CreatedSegmentIds.Select(id => Label(after, id)) ?? [])}.");
            return 0;
        }));
        return command;
    }

    /// <summary>The segment's id and its equal pieces.</summary>
    internal static (IReadOnlyList<long> Seal, IReadOnlyList<(double Start, double End)> Ranges) PlanSplit(StreamDescription stream, string text)
    {
        var parts = text.Split(':', 2, StringSplitOptions.TrimEntries);
        var pieces = 2;
        if (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out pieces) || pieces < 2))
        {
            throw new CliException($"'{text}': PIECES must be a whole number of at least 2.");
        }

        var segment = Find(stream, parts[0]);
        var width = segment.KeyEnd - segment.KeyStart;
        var ranges = Enumerable.Range(0, pieces)
            .Select(i => (segment.KeyStart + (width * i / pieces), i == pieces - 1 ? segment.KeyEnd : segment.KeyStart + (width * (i + 1) / pieces)))
            .ToList();
        return ([segment.Id], ranges);
    }

    /// <summary>The segments' ids and the one range covering them (the controller checks they are adjacent).</summary>
    internal static (IReadOnlyList<long> Seal, IReadOnlyList<(double Start, double End)> Ranges) PlanMerge(StreamDescription stream, string text)
    {
        var segments = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => Find(stream, s)).ToList();
        if (segments.Count < 2)
        {
            throw new CliException($"'{text}': --merge takes at least two segments, separated by commas.");
        }

        return ([.. segments.Select(s => s.Id)], [(segments.Min(s => s.KeyStart), segments.Max(s => s.KeyEnd))]);
    }

    /// <summary>Prints the policy, the scale in progress and the last few scales.</summary>
    public static void Print(StreamDescription d)
    {
        Console.WriteLine($"scaling:  {d.Scaling}");
        if (d.Transition is { } t)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"scaling in progress: from epoch {t.FromEpoch}, step '{(t.Step.Length == 0 ? "recorded" : t.Step)}' for {t.StepAge.TotalSeconds:0} s, sealing {string.Join(", ", t.SealSegmentIds.Select(id => Label(d, id)))} ({t.Reason})"));
        }

        if (d.History.Count > 0)
        {
            Console.WriteLine($"history:  {d.History.Count} scale(s), latest last");
            foreach (var e in d.History.Skip(Math.Max(0, d.History.Count - ShownHistory)))
            {
                Console.WriteLine($"  epoch {e.Epoch} at {e.Time:u}: sealed {string.Join(", ", e.SealedSegmentIds.Select(IdText))} -> created {string.Join(", ", e.CreatedSegmentIds.Select(IdText))} ({e.Reason})");
            }
        }

        foreach (var hot in d.HotKeys)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hot key:  segment {IdText(hot.SegmentId)} keys [{hot.KeyStart:F4}, {hot.KeyEnd:F4}) carry {hot.Share:P0} of its bytes (not split)"));
        }
    }

    /// <summary>How <c>describe</c> prints a segment: its number, and its id when that differs.</summary>
    internal static string IdText(long id)
    {
        var (epoch, number) = ((int)(id >> 32), (int)(id & 0xFFFFFFFF));
        return epoch == 0
            ? number.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{number} (id {id}, epoch {epoch})");
    }

    private static string Label(StreamDescription stream, long id) =>
        stream.ActiveSegments.FirstOrDefault(s => s.Id == id)?.Name ?? IdText(id);

    /// <summary>A segment of the current epoch by number (below 2^32) or id.</summary>
    private static SegmentDescription Find(StreamDescription stream, string text)
    {
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            throw new CliException($"'{text}' is not a segment: give its number or id as `stream describe` prints them.");
        }

        var found = value <= uint.MaxValue
            ? stream.ActiveSegments.FirstOrDefault(s => (s.Id & 0xFFFFFFFF) == value)
            : stream.ActiveSegments.FirstOrDefault(s => s.Id == value);
        return found ?? throw new CliException(
            $"Stream {stream.Scope}/{stream.Stream} has no segment {text} in its current epoch {stream.Epoch}; its segments are {string.Join(", ", stream.ActiveSegments.Select(s => IdText(s.Id)))}.");
    }
}
