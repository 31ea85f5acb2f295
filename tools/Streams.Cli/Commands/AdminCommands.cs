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
        var segments = new Option<int>("--segments") { Description = "Number of segments (fixed).", DefaultValueFactory = _ => 1 };
        var createScope = new Option<bool>("--create-scope") { Description = "Create the scope too if it does not exist." };
        var create = new Command("create", "Create a stream.") { createName, segments, createScope };
        create.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(createName)!);
            await using var client = CliSupport.CreateClient(parse);
            if (parse.GetValue(createScope))
            {
                await client.Streams.CreateScopeAsync(scope, ct);
            }

            var created = await client.Streams.CreateStreamAsync(scope, stream, StreamConfig.Fixed(parse.GetValue(segments)), ct);
            Console.WriteLine(created ? $"Created stream {scope}/{stream} with {parse.GetValue(segments)} segments." : $"Stream {scope}/{stream} already exists.");
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

        return new Command("stream", "Manage streams.") { create, list, describe, seal, delete };
    }

    private static void Print(StreamDescription d)
    {
        Console.WriteLine($"stream:   {d.Scope}/{d.Stream}");
        Console.WriteLine($"state:    {(d.IsSealed ? "sealed" : "active")}");
        Console.WriteLine($"created:  {d.CreatedAt:u}");
        Console.WriteLine($"epoch:    {d.Epoch}");
        Console.WriteLine($"segments: {d.ActiveSegments.Count}");
        foreach (var s in d.ActiveSegments)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {s.Name,-40} keys [{s.KeyStart:F4}, {s.KeyEnd:F4})"));
        }
    }
}
