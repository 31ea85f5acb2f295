using System.CommandLine;
using System.Globalization;
using Streams.Client;

namespace Streams.Cli.Commands;

/// <summary><c>streams scope ...</c> and <c>streams stream ...</c>.</summary>
internal static class AdminCommands
{
    public static Command Scope()
    {
        var name = new Argument<string>("scope") { Description = "Scope name." };
        var create = new Command("create", "Create a scope.") { name };
        create.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            var scope = parse.GetValue(name)!;
            var created = await client.Streams.CreateScopeAsync(scope, ct);
            Console.WriteLine(created ? $"Created scope {scope}." : $"Scope {scope} already exists.");
            return 0;
        }));

        var deleteName = new Argument<string>("scope") { Description = "Scope name." };
        var delete = new Command("delete", "Delete an empty scope.") { deleteName };
        delete.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            var scope = parse.GetValue(deleteName)!;
            var deleted = await client.Streams.DeleteScopeAsync(scope, ct);
            Console.WriteLine(deleted ? $"Deleted scope {scope}." : $"Scope {scope} does not exist.");
            return 0;
        }));

        var list = new Command("list", "List scopes.");
        list.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            foreach (var scope in await client.Streams.ListScopesAsync(ct))
            {
                Console.WriteLine(scope);
            }

            return 0;
        }));

        return new Command("scope", "Manage scopes.") { create, list, delete };
    }

    public static Command Stream()
    {
        var createName = new Argument<string>("stream") { Description = "scope/stream" };
        var segments = new Option<int?>("--segments") { Description = "Number of segments (fixed; the same as --scaling fixed:N). Default 1." };
        var createScope = new Option<bool>("--create-scope") { Description = "Create the scope too if it does not exist." };
        var (retentionTime, retentionSize, retentionConsumed) = RetentionOptions();
        var createPolicy = ScaleCommands.PolicyOptions.Create();
        var create = new Command("create", "Create a stream.") { createName, segments, createScope, retentionTime, retentionSize, retentionConsumed };
        foreach (var option in createPolicy.All)
        {
            create.Options.Add(option);
        }

        create.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(createName)!);
            await using var client = CliSupport.CreateClient(parse);
            if (parse.GetValue(createScope))
            {
                await client.Streams.CreateScopeAsync(scope, ct);
            }

            var policy = createPolicy.Parse(parse);
            if (policy is not null && parse.GetValue(segments) is not null)
            {
                throw new CliException("Give --segments N or --scaling, not both (--segments N is --scaling fixed:N).");
            }

            policy ??= ScalingPolicy.Fixed(parse.GetValue(segments) ?? 1);
            var config = new StreamConfig { Scaling = policy, Retention = ParseRetention(parse, retentionTime, retentionSize, retentionConsumed) };
            var created = await client.Streams.CreateStreamAsync(scope, stream, config, ct);
            Console.WriteLine(created ? $"Created stream {scope}/{stream} with {policy.SegmentCount} segments ({policy})." : $"Stream {scope}/{stream} already exists.");
            return 0;
        }));

        var updateName = new Argument<string>("stream") { Description = "scope/stream" };
        var (updateTime, updateSize, updateConsumed) = RetentionOptions();
        var keepAll = new Option<bool>("--no-retention") { Description = "Keep everything from now on (removes the retention policy)." };
        var updatePolicy = ScaleCommands.PolicyOptions.Create();
        var update = new Command("update", "Change a stream's retention or scaling policy (a new fixed:N rescales it now).") { updateName, updateTime, updateSize, updateConsumed, keepAll };
        foreach (var option in updatePolicy.All)
        {
            update.Options.Add(option);
        }

        update.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(updateName)!);
            var retention = ParseRetention(parse, updateTime, updateSize, updateConsumed);
            var policy = updatePolicy.Parse(parse);
            if (retention is not null && parse.GetValue(keepAll))
            {
                throw new ArgumentException("Give --retention-time, --retention-size, --retention-consumed or --no-retention, not several.");
            }

            var changeRetention = retention is not null || parse.GetValue(keepAll);
            if (!changeRetention && policy is null)
            {
                throw new ArgumentException("Give one of --retention-time, --retention-size, --retention-consumed or --no-retention, or --scaling.");
            }

            await using var client = CliSupport.CreateClient(parse);
            var described = policy is not null ? await client.Streams.UpdateScalingAsync(scope, stream, policy, ct) : null;
            if (changeRetention)
            {
                described = await client.Streams.UpdateRetentionAsync(scope, stream, retention, ct);
            }

            Print(described!);
            return 0;
        }));

        var listScope = new Argument<string>("scope") { Description = "Scope name." };
        var list = new Command("list", "List the streams of a scope.") { listScope };
        list.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            foreach (var stream in await client.Streams.ListStreamsAsync(parse.GetValue(listScope)!, ct))
            {
                Console.WriteLine(stream);
            }

            return 0;
        }));

        var describeName = new Argument<string>("stream") { Description = "scope/stream" };
        var describe = new Command("describe", "Show a stream's state and segments.") { describeName };
        describe.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(describeName)!);
            await using var client = CliSupport.CreateClient(parse);
            Print(await client.Streams.DescribeStreamAsync(scope, stream, ct));
            return 0;
        }));

        var sealName = new Argument<string>("stream") { Description = "scope/stream" };
        var seal = new Command("seal", "Seal a stream: no more writes.") { sealName };
        seal.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(sealName)!);
            await using var client = CliSupport.CreateClient(parse);
            await client.Streams.SealStreamAsync(scope, stream, ct);
            Console.WriteLine($"Sealed stream {scope}/{stream}.");
            return 0;
        }));

        var deleteName = new Argument<string>("stream") { Description = "scope/stream" };
        var delete = new Command("delete", "Delete a sealed stream and its data.") { deleteName };
        delete.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(deleteName)!);
            await using var client = CliSupport.CreateClient(parse);
            var deleted = await client.Streams.DeleteStreamAsync(scope, stream, ct);
            Console.WriteLine(deleted ? $"Deleted stream {scope}/{stream}." : $"Stream {scope}/{stream} does not exist.");
            return 0;
        }));

        var cutName = new Argument<string>("stream") { Description = "scope/stream" };
        var cut = new Command("cut", "Print the stream's current tail as a stream cut (segment-id=offset,...), for `stream truncate --at`.") { cutName };
        cut.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(cutName)!);
            await using var client = CliSupport.CreateClient(parse);
            Console.WriteLine(CliSupport.FormatCut(await client.Streams.GetStreamCutAsync(scope, stream, ct)));
            return 0;
        }));

        var truncateName = new Argument<string>("stream") { Description = "scope/stream" };
        var at = new Option<string?>("--at") { Description = "The cut to truncate at, segment-id=offset[,...] (from `stream cut`); default: the current tail (drops everything written so far)." };
        var truncate = new Command("truncate", "Drop the data before a stream cut: it becomes unreadable and is deleted from Tier 2.") { truncateName, at };
        truncate.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(truncateName)!);
            await using var client = CliSupport.CreateClient(parse);
            var target = parse.GetValue(at) is { } text ? CliSupport.ParseCut(scope, stream, text) : await client.Streams.GetStreamCutAsync(scope, stream, ct);
            await client.Streams.TruncateStreamAsync(target, ct);
            Console.WriteLine($"Truncated stream {scope}/{stream} at {CliSupport.FormatCut(target)}.");
            return 0;
        }));

        return new Command("stream", "Manage streams.") { create, update, list, describe, ScaleCommands.Scale(), seal, delete, cut, truncate };
    }

    private static (Option<string?> Time, Option<string?> Size, Option<string?> Consumed) RetentionOptions() => (
        new Option<string?>("--retention-time") { Description = "Keep at least this much history, e.g. 90s, 30m, 12h, 7d (default: keep everything)." },
        new Option<string?>("--retention-size") { Description = "Keep at least this many bytes, e.g. 500MiB, 10GiB (default: keep everything)." },
        new Option<string?>("--retention-consumed")
        {
            Description = "Keep data until the reader groups that hold back retention (readergroup create --hold-retention) have checkpointed past it, "
                + "within bounds: 'min=1h,max=7d,max=100GiB' (a min keeps at least, a max keeps at most; a time or a size), or 'unbounded'.",
        });

    private static RetentionPolicy? ParseRetention(ParseResult parse, Option<string?> time, Option<string?> size, Option<string?> consumed)
    {
        if (new[] { parse.GetValue(time), parse.GetValue(size), parse.GetValue(consumed) }.Count(v => v is not null) > 1)
        {
            throw new ArgumentException("Give one of --retention-time, --retention-size and --retention-consumed.");
        }

        return parse.GetValue(time) is { } t ? RetentionPolicy.ByTime(ParseDuration(t))
            : parse.GetValue(size) is { } s ? RetentionPolicy.BySize(ParseSize(s))
            : parse.GetValue(consumed) is { } c ? ParseConsumed(c) : null;
    }

    /// <summary>"unbounded", or min=/max= entries, each a duration (90s, 12h, 7d) or a size (500MiB, 10GiB).</summary>
    internal static RetentionPolicy ParseConsumed(string text)
    {
        TimeSpan? minTime = null, maxTime = null;
        long? minBytes = null, maxBytes = null;
        if (text.Trim() != "unbounded")
        {
            foreach (var entry in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var (key, value) = entry.Split('=', 2) is [var k, var v] ? (k.Trim(), v.Trim()) : throw new ArgumentException($"'{entry}' is not min=VALUE or max=VALUE.");
                var isSize = value.EndsWith('B') || value.EndsWith('b');
                switch (key, isSize)
                {
                    case ("min", false): minTime = ParseDuration(value); break;
                    case ("min", true): minBytes = ParseSize(value); break;
                    case ("max", false): maxTime = ParseDuration(value); break;
                    case ("max", true): maxBytes = ParseSize(value); break;
                    default: throw new ArgumentException($"'{entry}': a bound is min=VALUE or max=VALUE.");
                }
            }
        }

        return RetentionPolicy.FollowingConsumption(minTime, minBytes, maxTime, maxBytes);
    }

    /// <summary>90s, 30m, 12h, 7d, or a plain number of seconds.</summary>
    internal static TimeSpan ParseDuration(string text)
    {
        var (number, unit) = SplitUnit(text);
        return unit switch
        {
            "" or "s" => TimeSpan.FromSeconds(number),
            "ms" => TimeSpan.FromMilliseconds(number),
            "m" => TimeSpan.FromMinutes(number),
            "h" => TimeSpan.FromHours(number),
            "d" => TimeSpan.FromDays(number),
            _ => throw new ArgumentException($"'{text}' is not a duration such as 90s, 30m, 12h or 7d."),
        };
    }

    /// <summary>A byte count with an optional unit: B, KB/KiB, MB/MiB, GB/GiB, TB/TiB (powers of 1024).</summary>
    internal static long ParseSize(string text)
    {
        var (number, unit) = SplitUnit(text);
        var multiplier = unit.ToUpperInvariant() switch
        {
            "" or "B" => 1L,
            "K" or "KB" or "KIB" => 1L << 10,
            "M" or "MB" or "MIB" => 1L << 20,
            "G" or "GB" or "GIB" => 1L << 30,
            "T" or "TB" or "TIB" => 1L << 40,
            _ => throw new ArgumentException($"'{text}' is not a size such as 500MiB or 10GiB."),
        };
        return checked((long)(number * multiplier));
    }

    private static (double Number, string Unit) SplitUnit(string text)
    {
        var trimmed = text.Trim();
        var split = 0;
        while (split < trimmed.Length && (char.IsAsciiDigit(trimmed[split]) || trimmed[split] == '.'))
        {
            split++;
        }

        if (split == 0 || !double.TryParse(trimmed[..split], CultureInfo.InvariantCulture, out var number) || number <= 0)
        {
            throw new ArgumentException($"'{text}' does not start with a positive number.");
        }

        return (number, trimmed[split..].Trim());
    }

    private static string Bounds(ConsumptionBounds c)
    {
        var bounds = new List<string>();
        if (c.MinTime is { } minTime)
        {
            bounds.Add(string.Create(CultureInfo.InvariantCulture, $"at least {minTime.TotalSeconds:0.###} s"));
        }

        if (c.MinBytes is { } minBytes)
        {
            bounds.Add(string.Create(CultureInfo.InvariantCulture, $"at least {minBytes:N0} bytes"));
        }

        if (c.MaxTime is { } maxTime)
        {
            bounds.Add(string.Create(CultureInfo.InvariantCulture, $"at most {maxTime.TotalSeconds:0.###} s"));
        }

        if (c.MaxBytes is { } maxBytes)
        {
            bounds.Add(string.Create(CultureInfo.InvariantCulture, $"at most {maxBytes:N0} bytes"));
        }

        return bounds.Count == 0 ? string.Empty : $" ({string.Join(", ", bounds)})";
    }

    private static void Print(StreamDescription d)
    {
        Console.WriteLine($"stream:   {d.Scope}/{d.Stream}");
        Console.WriteLine($"state:    {(d.IsSealed ? "sealed" : "active")}");
        Console.WriteLine($"created:  {d.CreatedAt:u}");
        Console.WriteLine($"epoch:    {d.Epoch}");
        Console.WriteLine(d.Retention switch
        {
            { Time: { } time } => string.Create(CultureInfo.InvariantCulture, $"retain:   {time.TotalSeconds:0.###} s"),
            { SizeBytes: { } size } => string.Create(CultureInfo.InvariantCulture, $"retain:   {size:N0} bytes"),
            { Consumption: { } c } => "retain:   until checkpointed by the groups that hold retention" + Bounds(c),
            _ => "retain:   everything",
        });
        ScaleCommands.Print(d);
        Console.WriteLine($"segments: {d.ActiveSegments.Count}");
        foreach (var s in d.ActiveSegments)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {s.Name,-40} {ScaleCommands.IdText(s.Id),-28} keys [{s.KeyStart:F4}, {s.KeyEnd:F4})"));
        }
    }
}
