using System.CommandLine;
using System.Globalization;
using Streams.Client;
using Streams.Client.ReaderGroups;

namespace Streams.Cli.Commands;

/// <summary><c>streams readergroup create|describe|list|delete|checkpoint|reset</c>.</summary>
internal static class ReaderGroupCommands
{
    public static Command Create() => new("readergroup", "Manage reader groups.") { CreateCommand(), Describe(), List(), Delete(), Checkpoint(), Reset() };

    private static Command CreateCommand()
    {
        var name = new Argument<string>("group") { Description = "scope/group, or a name in the scope of the first --stream." };
        var streams = new Option<string[]>("--stream") { Description = "scope/stream the group reads (repeat for several).", Required = true, AllowMultipleArgumentsPerToken = true };
        var from = new Option<string?>("--from") { Description = "Where the group starts reading its one --stream: a cut, segment-id=offset[,...] (as `stream cut` prints); default: the stream's head." };
        var to = new Option<string?>("--to") { Description = "Where the group stops reading its one --stream: a cut as for --from; the group ends once it has read up to it. Default: no end." };
        var heartbeat = new Option<int?>("--heartbeat-ms") { Description = "How often readers report in; default 3000." };
        var session = new Option<int?>("--session-timeout-ms") { Description = "A reader silent this long loses its segments; default 30000." };
        var every = new Option<string?>("--checkpoint-every") { Description = "Take a checkpoint automatically this often, e.g. 30s, 5m (default: only on demand)." };
        var hold = new Option<bool>("--hold-retention")
        {
            Description = "The group's latest checkpoint holds back the retention of its streams whose retention follows consumption (stream create --retention-consumed).",
        };
        var create = new Command("create", "Create a reader group: its readers share the streams' segments, each event read by one of them.") { name, streams, from, to, heartbeat, session, every, hold };
        create.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var named = parse.GetValue(streams)!;
            var (scope, group) = ParseGroup(parse.GetValue(name)!, named.Length > 0 ? CliSupport.ParseStream(named[0]).Scope : null);
            var config = ReaderGroupConfig.For([.. named.Select(s => { var (sc, st) = CliSupport.ParseStream(s); return $"{sc}/{st}"; })]);
            var (fromText, toText) = (parse.GetValue(from), parse.GetValue(to));
            if ((fromText is not null || toText is not null) && named.Length != 1)
            {
                throw new CliException($"--from and --to are cuts of one stream, and the group would read {named.Length}: give exactly one --stream with them.");
            }

            var (cutScope, cutStream) = CliSupport.ParseStream(named[0]);
            config = config with
            {
                StartCuts = fromText is null ? [] : [CliSupport.ParseCut(cutScope, cutStream, fromText)],
                EndCuts = toText is null ? [] : [CliSupport.ParseCut(cutScope, cutStream, toText)],
                HeartbeatInterval = parse.GetValue(heartbeat) is { } h ? TimeSpan.FromMilliseconds(h) : config.HeartbeatInterval,
                SessionTimeout = parse.GetValue(session) is { } t ? TimeSpan.FromMilliseconds(t) : config.SessionTimeout,
                CheckpointInterval = parse.GetValue(every) is { } interval ? AdminCommands.ParseDuration(interval) : null,
                RetentionFollowsCheckpoints = parse.GetValue(hold),
            };
            await using var client = CliSupport.CreateClient(parse);
            var created = await client.CreateReaderGroupAsync(scope, group, config, ct);
            var bounds = string.Concat(config.StartCuts.Select(c => $" from {CliSupport.FormatCut(c)}").Concat(config.EndCuts.Select(c => $" to {CliSupport.FormatCut(c)}")));
            Console.WriteLine(created ? $"Created reader group {scope}/{group} over {string.Join(", ", config.Streams)}{bounds}." : $"Reader group {scope}/{group} already exists.");
            return 0;
        }));
        return create;
    }

    private static Command Describe()
    {
        var name = new Argument<string>("group") { Description = "scope/group" };
        var describe = new Command("describe", "Show a reader group: its readers, segments, committed positions, backlog, cuts and checkpoints.") { name };
        describe.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(name)!, null);
            await using var client = CliSupport.CreateClient(parse);
            var d = await client.DescribeReaderGroupAsync(scope, group, ct);
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"Reader group {d.Scope}/{d.Group}: reads {string.Join(", ", d.Config.Streams)}; generation {d.Generation}; {(d.Ended ? "ended (everything read)" : "reading")}");
            Console.WriteLine(string.Create(inv, $"  heartbeat {d.Config.HeartbeatInterval.TotalMilliseconds} ms, session timeout {d.Config.SessionTimeout.TotalMilliseconds} ms; unread {d.UnreadBytes} bytes"));
            if (d.Config.CheckpointInterval is not null || d.Config.RetentionFollowsCheckpoints)
            {
                Console.WriteLine(string.Create(inv, $"  {(d.Config.CheckpointInterval is { } i ? $"checkpoint every {i.TotalSeconds:0.###} s" : "checkpoints on demand")}{(d.Config.RetentionFollowsCheckpoints ? "; holds back retention until checkpointed" : string.Empty)}"));
            }
            foreach (var cut in d.Config.StartCuts)
            {
                Console.WriteLine($"  from {StreamAndCut(cut)}");
            }

            foreach (var cut in d.Config.EndCuts)
            {
                Console.WriteLine($"  to {StreamAndCut(cut)}");
            }

            Console.WriteLine($"  readers: {(d.Readers.Count == 0 ? "none" : string.Join(", ", d.Readers))}");
            foreach (var s in d.Segments)
            {
                Console.WriteLine(string.Create(inv, $"  {s.Segment,-40} {s.State,-10} {(s.Owner ?? "-"),-20} committed {s.CommittedOffset}, unread {s.UnreadBytes}"));
            }

            if (d.Checkpoints.Count == 0)
            {
                Console.WriteLine("  checkpoints: none");
            }

            foreach (var c in d.Checkpoints)
            {
                Console.WriteLine($"  checkpoint {c.Name} {(c.Complete ? "complete" : "incomplete")} {Time(c.CreatedAt)} {string.Join(' ', c.Cuts.Select(StreamAndCut))}");
            }

            return 0;
        }));
        return describe;
    }

    private static Command List()
    {
        var scope = new Argument<string>("scope") { Description = "Scope name." };
        var list = new Command("list", "List a scope's reader groups.") { scope };
        list.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            foreach (var group in await client.ListReaderGroupsAsync(parse.GetValue(scope)!, ct))
            {
                Console.WriteLine(group);
            }

            return 0;
        }));
        return list;
    }

    private static Command Delete()
    {
        var name = new Argument<string>("group") { Description = "scope/group" };
        var delete = new Command("delete", "Delete a reader group (its readers are told it no longer exists).") { name };
        delete.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(name)!, null);
            await using var client = CliSupport.CreateClient(parse);
            var deleted = await client.DeleteReaderGroupAsync(scope, group, ct);
            Console.WriteLine(deleted ? $"Deleted reader group {scope}/{group}." : $"Reader group {scope}/{group} does not exist.");
            return 0;
        }));
        return delete;
    }

    private static Command Checkpoint()
    {
        var name = new Argument<string>("group") { Description = "scope/group" };
        var checkpointName = new Option<string?>("--name") { Description = "The checkpoint's name, unique in the group (an existing one is shown again); default: cli- and the UTC time." };
        var timeout = new Option<int?>("--timeout-ms") { Description = "How long the readers get to answer; default 30000." };
        var checkpoint = new Command("checkpoint", "Take a checkpoint: a cut per stream of what the group's readers have processed, for `readergroup reset --checkpoint`.") { name, checkpointName, timeout };
        checkpoint.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(name)!, null);
            var wait = parse.GetValue(timeout) switch
            {
                null => (TimeSpan?)null,
                > 0 and var ms => TimeSpan.FromMilliseconds(ms),
                var ms => throw new CliException($"--timeout-ms must be above 0 (is {ms})."),
            };
            var named = parse.GetValue(checkpointName) ?? "cli-" + DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss.fff'Z'", CultureInfo.InvariantCulture);
            await using var client = CliSupport.CreateClient(parse);
            var c = await client.CreateCheckpointAsync(scope, group, named, wait, ct);
            Console.WriteLine($"Checkpoint {c.Name} of reader group {scope}/{group}: {(c.Complete ? "complete" : "not complete (a reader has not answered it yet)")}, taken {Time(c.CreatedAt)}");
            foreach (var cut in c.Cuts)
            {
                Console.WriteLine(StreamAndCut(cut));
            }

            // A checkpoint that is not complete cannot be reset to.
            return c.Complete ? 0 : 1;
        }));
        return checkpoint;
    }

    private static Command Reset()
    {
        var name = new Argument<string>("group") { Description = "scope/group" };
        var checkpointName = new Option<string?>("--checkpoint") { Description = "Move the group to this complete checkpoint (one of the latest 10 `readergroup describe` shows)." };
        var at = new Option<string?>("--at") { Description = "Move a group that reads one stream to this cut, segment-id=offset[,...] (as `stream cut` prints)." };
        var reset = new Command("reset", "Move a reader group to a checkpoint or a cut: its readers drop their segments and read again from there.") { name, checkpointName, at };
        reset.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(name)!, null);
            var (named, cutText) = (parse.GetValue(checkpointName), parse.GetValue(at));
            if ((named is null) == (cutText is null))
            {
                throw new CliException("Give either --checkpoint NAME or --at CUT.");
            }

            await using var client = CliSupport.CreateClient(parse);
            var d = await client.DescribeReaderGroupAsync(scope, group, ct);
            ReaderGroupDescription after;
            IReadOnlyList<StreamCut> cuts;
            string target;
            if (named is not null)
            {
                var checkpoint = d.Checkpoints.LastOrDefault(c => c.Name == named)
                    ?? throw new CliException($"Reader group {scope}/{group} has no checkpoint '{named}' among its latest ({(d.Checkpoints.Count == 0 ? "none" : string.Join(", ", d.Checkpoints.Select(c => c.Name)))}).");
                after = await client.ResetReaderGroupAsync(scope, group, checkpoint, ct);
                (cuts, target) = (checkpoint.Cuts, $"checkpoint {checkpoint.Name}");
            }
            else
            {
                if (d.Config.Streams.Count != 1)
                {
                    throw new CliException($"--at is a cut of one stream, and {scope}/{group} reads {d.Config.Streams.Count} ({string.Join(", ", d.Config.Streams)}): reset it to a checkpoint with --checkpoint.");
                }

                var (cutScope, cutStream) = CliSupport.ParseStream(d.Config.Streams[0]);
                cuts = [CliSupport.ParseCut(cutScope, cutStream, cutText!)];
                after = await client.ResetReaderGroupAsync(scope, group, cuts, ct);
                target = "a cut";
            }

            Console.WriteLine($"Reset reader group {scope}/{group} to {target}; generation {after.Generation}.");
            foreach (var cut in cuts)
            {
                Console.WriteLine(StreamAndCut(cut));
            }

            return 0;
        }));
        return reset;
    }

    /// <summary>"scope/group", or a bare group name in <paramref name="defaultScope"/> (when there is one).</summary>
    public static (string Scope, string Group) ParseGroup(string value, string? defaultScope)
    {
        var parts = value.Split('/');
        return parts switch
        {
            [var scope, var group] when scope.Length > 0 && group.Length > 0 => (scope, group),
            [var group] when group.Length > 0 && defaultScope is not null => (defaultScope, group),
            _ => throw new CliException($"'{value}' is not a reader group: give it as scope/group."),
        };
    }

    /// <summary>"scope/stream CUT", the cut as `stream cut` prints it.</summary>
    private static string StreamAndCut(StreamCut cut) => $"{cut.Scope}/{cut.Stream} {CliSupport.FormatCut(cut)}";

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
