using System.CommandLine;
using System.Globalization;
using Streams.Client.Transactions;

namespace Streams.Cli.Commands;

/// <summary><c>streams transaction list|status|abort scope/stream [ID]</c> (writing one: <c>streams write --transaction</c>).</summary>
internal static class TransactionCommands
{
    public static Command Create()
    {
        var command = new Command("transaction", "List, inspect and abort a stream's transactions (write one with `streams write S/T --transaction`).");
        command.Subcommands.Add(List());
        command.Subcommands.Add(Status());
        command.Subcommands.Add(Abort());
        return command;
    }

    private static Command List()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var command = new Command("list", "The stream's transactions: open, committing, and those finished in the last minutes.") { name };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            await using var client = CliSupport.CreateClient(parse);
            var transactions = await client.Streams.ListTransactionsAsync(scope, stream, ct);
            Console.WriteLine($"{transactions.Count} transaction(s) on {scope}/{stream}");
            foreach (var t in transactions.OrderBy(t => t.CreatedAt))
            {
                Console.WriteLine(Line(t));
            }

            return 0;
        }));
        return command;
    }

    private static Command Status()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var id = new Argument<string>("id") { Description = "The transaction id (32 hex digits)." };
        var command = new Command("status", "One transaction's state, lease and segments.") { name, id };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            await using var client = CliSupport.CreateClient(parse);
            var t = await client.Streams.GetTransactionAsync(scope, stream, parse.GetValue(id)!, ct);
            Console.WriteLine(Line(t));
            Console.WriteLine($"  created {t.CreatedAt:u}, lease until {t.LeaseExpiresAt:u}, at most until {t.MaxExpiresAt:u}");
            if (t.SegmentIds.Count > 0)
            {
                Console.WriteLine($"  merges into segment id(s) {string.Join(", ", t.SegmentIds.Select(s => s.ToString(CultureInfo.InvariantCulture)))}");
            }

            return 0;
        }));
        return command;
    }

    private static Command Abort()
    {
        var name = new Argument<string>("stream") { Description = "scope/stream" };
        var id = new Argument<string>("id") { Description = "The transaction id (32 hex digits)." };
        var command = new Command("abort", "Aborts an open transaction: nothing of it becomes visible, and its data is deleted.") { name, id };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            await using var client = CliSupport.CreateClient(parse);
            var t = await client.Streams.AbortTransactionAsync(scope, stream, parse.GetValue(id)!, ct);
            Console.WriteLine(Line(t));
            return 0;
        }));
        return command;
    }

    private static string Line(TransactionDescription t) =>
        $"{t.Id}  {t.Status.ToString().ToLowerInvariant(),-10}  epoch {t.Epoch}"
        + (t.FinishedAt is { } finished ? $"  finished {finished:u}" : string.Empty)
        + (t.AbortReason.Length > 0 ? $"  ({t.AbortReason})" : string.Empty);
}
