using System.CommandLine;
using System.Globalization;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Cli.Commands;

/// <summary><c>streams write scope/stream</c>: events from stdin lines, or generated ones.</summary>
internal static class WriteCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var count = new Option<long?>("--count") { Description = "Generate this many events instead of reading stdin." };
        var size = new Option<int>("--size") { Description = "Size in bytes of generated events.", DefaultValueFactory = _ => 100 };
        var keyCount = new Option<int>("--key-count") { Description = "Generated events cycle through this many routing keys (key-0, key-1, ...).", DefaultValueFactory = _ => 16 };
        var key = new Option<string?>("--key") { Description = "Routing key of every line read from stdin." };
        var separator = new Option<string?>("--key-separator") { Description = "Split each stdin line at the first separator into routing key and event." };
        var command = new Command("write", "Write events: one per stdin line, or --count generated ones. Prints how many were acknowledged.")
        {
            name, count, size, keyCount, key, separator,
        };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            if (parse.GetValue(size) < 0 || parse.GetValue(keyCount) < 1)
            {
                throw new CliException("--size must be at least 0 and --key-count at least 1.");
            }

            await using var client = CliSupport.CreateClient(parse);
            await using var writer = await client.CreateWriterAsync(scope, stream, Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
            var pending = new List<Task>();
            long written = 0;
            if (parse.GetValue(count) is { } total)
            {
                var payload = new string('x', parse.GetValue(size));
                var keys = parse.GetValue(keyCount);
                for (long i = 0; i < total; i++)
                {
                    pending.Add(writer.WriteEventAsync("key-" + (i % keys).ToString(CultureInfo.InvariantCulture), payload, ct));
                    written++;
                    await DrainAsync(pending, 10_000);
                }
            }
            else
            {
                var fixedKey = parse.GetValue(key);
                var sep = parse.GetValue(separator);
                while (await Console.In.ReadLineAsync(ct) is { } line)
                {
                    string? routingKey = fixedKey;
                    var value = line;
                    if (!string.IsNullOrEmpty(sep) && line.IndexOf(sep, StringComparison.Ordinal) is var at and >= 0)
                    {
                        routingKey = line[..at];
                        value = line[(at + sep.Length)..];
                    }

                    pending.Add(writer.WriteEventAsync(routingKey, value, ct));
                    written++;
                    await DrainAsync(pending, 10_000);
                }
            }

            await Task.WhenAll(pending);
            await writer.FlushAsync(ct);
            Console.WriteLine($"Wrote {written} events to {scope}/{stream}.");
            return 0;
        }));
        return command;
    }

    /// <summary>Keeps the list of unacknowledged writes bounded; rethrows the first failure.</summary>
    private static async Task DrainAsync(List<Task> pending, int limit)
    {
        if (pending.Count < limit)
        {
            return;
        }

        await Task.WhenAll(pending);
        pending.Clear();
    }
}
