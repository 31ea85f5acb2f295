using System.CommandLine;
using System.Text.Json;
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
        var command = new Command("read", "Read events, one per line.") { name, fromStart, count, follow, format };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            var limit = parse.GetValue(count) ?? long.MaxValue;
            var json = parse.GetValue(format) == "json";
            await using var client = CliSupport.CreateClient(parse);
            var reader = client.CreateReader(scope, stream, Serializers.Utf8, new EventReaderOptions
            {
                Follow = parse.GetValue(follow),
                StartAtTail = !parse.GetValue(fromStart),
            });
            using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
            long read = 0;
            await foreach (var e in reader.ReadAllAsync(ct))
            {
                if (read++ >= limit)
                {
                    break;
                }

                if (json)
                {
                    stdout.WriteLine(JsonSerializer.Serialize(new JsonEvent(e.RoutingKey, e.Position.Segment, e.Position.Offset, e.Value), CliJsonContext.Default.JsonEvent));
                }
                else
                {
                    stdout.WriteLine(e.Value);
                }

                if (parse.GetValue(follow))
                {
                    await stdout.FlushAsync(ct);
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
