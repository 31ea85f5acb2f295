using System.CommandLine;
using System.Text.Json;
using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Serialization;

namespace Streams.Cli.Commands;

/// <summary><c>streams read scope/stream</c>: one event per line on stdout.</summary>
internal static class ReadCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var fromStart = new Option<bool>("--from-start") { Description = "Read from the beginning (default: only events written from now on)." };
        var count = new Option<long?>("--count") { Description = "Stop after this many events." };
        var follow = new Option<bool>("--follow") { Description = "Keep waiting for new events until the stream is sealed." };
        var format = new Option<string>("--format") { Description = "text (the event) or json (key, segment, offset and event).", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "json");
        var group = new Option<string?>("--group")
        {
            Description = "Read as a member of this reader group (scope/group, or a name in the stream's scope; created if missing): "
                + "several processes share the work, each event read by one; exits 0 once the group has read everything (all of the sealed stream, or up to the group's end cut).",
        };
        var readerId = new Option<string?>("--reader") { Description = "This reader's id in the group (default: host name and process id). A reader that restarts with the same id takes its place." };
        var command = new Command("read", "Read events, one per line.") { name, fromStart, count, follow, format, group, readerId };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            var limit = parse.GetValue(count) ?? long.MaxValue;
            var json = parse.GetValue(format) == "json";
            await using var client = CliSupport.CreateClient(parse);
            IAsyncEnumerable<EventRead<string>> events;
            GroupReader<string>? member = null;
            if (parse.GetValue(group) is { } named)
            {
                if (parse.GetValue(fromStart) || parse.GetValue(follow))
                {
                    throw new CliException("--group reads from the group's committed positions until the group has read everything: leave out --from-start and --follow.");
                }

                var (groupScope, groupName) = ReaderGroupCommands.ParseGroup(named, scope);
                await client.CreateReaderGroupAsync(groupScope, groupName, ReaderGroupConfig.For($"{scope}/{stream}"), ct);
                member = client.CreateReader(groupScope, groupName, parse.GetValue(readerId) ?? $"{Environment.MachineName}-{Environment.ProcessId}", Serializers.Utf8);
                events = member.ReadAsync(ct);
            }
            else
            {
                if (parse.GetValue(readerId) is not null)
                {
                    throw new CliException("--reader names a member of a reader group: give --group too.");
                }

                events = client.CreateReader(scope, stream, Serializers.Utf8, new EventReaderOptions
                {
                    Follow = parse.GetValue(follow),
                    StartAtTail = !parse.GetValue(fromStart),
                }).ReadAllAsync(ct);
            }

            await using var leave = member;
            using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
            long read = 0;
            // --count 0 reads nothing: a group reader would count an event it stopped on as processed.
            if (limit > 0)
            {
                await foreach (var e in events)
                {
                    if (json)
                    {
                        stdout.WriteLine(JsonSerializer.Serialize(new JsonEvent(e.RoutingKey, e.Position.Segment, e.Position.Offset, e.Value), CliJsonContext.Default.JsonEvent));
                    }
                    else
                    {
                        stdout.WriteLine(e.Value);
                    }

                    if (parse.GetValue(follow) || member is not null)
                    {
                        // A group member commits what it moved past: what it printed must be out before that.
                        await stdout.FlushAsync(ct);
                    }

                    if (++read == limit)
                    {
                        if (member is not null)
                        {
                            // Stop before asking for another event (a group reader counts the one it stopped on as
                            // processed), and commit the last one printed so the next member starts after it.
                            await member.CommitAsync(e.Position, ct);
                        }

                        break;
                    }
                }
            }

            await stdout.FlushAsync(ct);
            return 0;
        }));
        return command;
    }
}

/// <summary>One event in <c>read --format json</c>.</summary>
internal sealed record JsonEvent(string? Key, string Segment, long Offset, string Value);

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonEvent))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class CliJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
