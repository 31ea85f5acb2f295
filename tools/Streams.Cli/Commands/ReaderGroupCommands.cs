using System.CommandLine;
using System.Globalization;
using Streams.Client.ReaderGroups;

namespace Streams.Cli.Commands;

/// <summary><c>streams readergroup create|describe|list|delete</c>.</summary>
internal static class ReaderGroupCommands
{
    public static Command Create()
    {
        var createName = new Argument<string>("group") { Description = "scope/group, or a name in the scope of the first --stream." };
        var streams = new Option<string[]>("--stream") { Description = "scope/stream the group reads (repeat for several).", Required = true, AllowMultipleArgumentsPerToken = true };
        var heartbeat = new Option<int?>("--heartbeat-ms") { Description = "How often readers report in; default 3000." };
        var session = new Option<int?>("--session-timeout-ms") { Description = "A reader silent this long loses its segments; default 30000." };
        var create = new Command("create", "Create a reader group: its readers share the streams' segments, each event read by one of them.") { createName, streams, heartbeat, session };
        create.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var named = parse.GetValue(streams)!;
            var (scope, group) = ParseGroup(parse.GetValue(createName)!, named.Length > 0 ? CliSupport.ParseStream(named[0]).Scope : null);
            var config = ReaderGroupConfig.For([.. named.Select(s => { var (sc, st) = CliSupport.ParseStream(s); return $"{sc}/{st}"; })]);
            config = config with
            {
                HeartbeatInterval = parse.GetValue(heartbeat) is { } h ? TimeSpan.FromMilliseconds(h) : config.HeartbeatInterval,
                SessionTimeout = parse.GetValue(session) is { } t ? TimeSpan.FromMilliseconds(t) : config.SessionTimeout,
            };
            await using var client = CliSupport.CreateClient(parse);
            var created = await client.CreateReaderGroupAsync(scope, group, config, ct);
            Console.WriteLine(created ? $"Created reader group {scope}/{group} over {string.Join(", ", config.Streams)}." : $"Reader group {scope}/{group} already exists.");
            return 0;
        }));

        var describeName = new Argument<string>("group") { Description = "scope/group" };
        var describe = new Command("describe", "Show a reader group: its readers, segments, committed positions and backlog.") { describeName };
        describe.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(describeName)!, null);
            await using var client = CliSupport.CreateClient(parse);
            var d = await client.DescribeReaderGroupAsync(scope, group, ct);
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"Reader group {d.Scope}/{d.Group}: reads {string.Join(", ", d.Config.Streams)}; generation {d.Generation}; {(d.Ended ? "ended (everything read)" : "reading")}");
            Console.WriteLine(string.Create(inv, $"  heartbeat {d.Config.HeartbeatInterval.TotalMilliseconds} ms, session timeout {d.Config.SessionTimeout.TotalMilliseconds} ms; unread {d.UnreadBytes} bytes"));
            Console.WriteLine($"  readers: {(d.Readers.Count == 0 ? "none" : string.Join(", ", d.Readers))}");
            foreach (var s in d.Segments)
            {
                Console.WriteLine(string.Create(inv, $"  {s.Segment,-40} {s.State,-10} {(s.Owner ?? "-"),-20} committed {s.CommittedOffset}, unread {s.UnreadBytes}"));
            }

            return 0;
        }));

        var listScope = new Argument<string>("scope") { Description = "Scope name." };
        var list = new Command("list", "List a scope's reader groups.") { listScope };
        list.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            await using var client = CliSupport.CreateClient(parse);
            foreach (var group in await client.ListReaderGroupsAsync(parse.GetValue(listScope)!, ct))
            {
                Console.WriteLine(group);
            }

            return 0;
        }));

        var deleteName = new Argument<string>("group") { Description = "scope/group" };
        var delete = new Command("delete", "Delete a reader group (its readers are told it no longer exists).") { deleteName };
        delete.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, group) = ParseGroup(parse.GetValue(deleteName)!, null);
            await using var client = CliSupport.CreateClient(parse);
            var deleted = await client.DeleteReaderGroupAsync(scope, group, ct);
            Console.WriteLine(deleted ? $"Deleted reader group {scope}/{group}." : $"Reader group {scope}/{group} does not exist.");
            return 0;
        }));

        return new Command("readergroup", "Manage reader groups.") { create, describe, list, delete };
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
}
