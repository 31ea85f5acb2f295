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
        var writerId = new Option<Guid?>("--writer-id") { Description = "A stable writer id (a UUID): a restarted writer with the same id continues after what the stream holds for it." };
        var sequenceFrom = new Option<long?>("--sequence-from") { Description = "Number the events N, N+1, ... as the application's sequence: events the stream already holds for --writer-id are not stored again (exactly-once re-sends)." };
        var reportAcks = new Option<bool>("--report-acks") { Description = "Print 'acked I' when the I-th event (0-based) is durable." };
        var transaction = new Option<bool>("--transaction") { Description = "Write all of the input in one transaction, committed at the end of the input: all of it becomes visible, or none." };
        var lease = new Option<double?>("--transaction-lease") { Description = "The transaction's lease in seconds (default: the controller's, 120 s); it is renewed while the input lasts." };
        var command = new Command("write", "Write events: one per stdin line, or --count generated ones. Prints how many were acknowledged.")
        {
            name, count, size, keyCount, key, separator, writerId, sequenceFrom, reportAcks, transaction, lease,
        };
        command.SetAction((parse, ct) => CliSupport.RunAsync(parse, async () =>
        {
            var (scope, stream) = CliSupport.ParseStream(parse.GetValue(name)!);
            if (parse.GetValue(size) < 0 || parse.GetValue(keyCount) < 1)
            {
                throw new CliException("--size must be at least 0 and --key-count at least 1.");
            }

            await using var client = CliSupport.CreateClient(parse);
            if (parse.GetValue(sequenceFrom) is < 0)
            {
                throw new CliException("--sequence-from must be at least 0.");
            }

            var transactional = parse.GetValue(transaction);
            if (transactional && (parse.GetValue(sequenceFrom) is not null || parse.GetValue(writerId) is not null))
            {
                throw new CliException("--transaction takes no --writer-id or --sequence-from: a transaction is exactly-once by itself (all or nothing).");
            }

            if (parse.GetValue(lease) is { } seconds && (!transactional || seconds <= 0))
            {
                throw new CliException("--transaction-lease needs --transaction and a positive number of seconds.");
            }

            await using var writer = await client.CreateWriterAsync(scope, stream, Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true, WriterId = parse.GetValue(writerId) }, ct);
            await using var txn = transactional
                ? await writer.BeginTransactionAsync(parse.GetValue(lease) is { } l ? TimeSpan.FromSeconds(l) : null, ct)
                : null;
            if (txn is not null)
            {
                Console.Error.WriteLine($"Transaction {txn.Id} begun on {scope}/{stream}.");
            }

            var pending = new List<Task>();
            long written = 0;
            var firstSequence = parse.GetValue(sequenceFrom);
            var acks = parse.GetValue(reportAcks) ? new AckReporter() : null;
            Task Write(string? routingKey, string value)
            {
                var index = written++;
                var write = txn is not null ? txn.WriteEventAsync(routingKey, value, ct)
                    : firstSequence is { } first ? writer.WriteEventAsync(routingKey, value, first + index, ct)
                    : writer.WriteEventAsync(routingKey, value, ct);
                return acks is null ? write : acks.Track(write, index);
            }

            if (parse.GetValue(count) is { } total)
            {
                var payload = new string('x', parse.GetValue(size));
                var keys = parse.GetValue(keyCount);
                for (long i = 0; i < total; i++)
                {
                    pending.Add(Write("key-" + (i % keys).ToString(CultureInfo.InvariantCulture), payload));
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

                    pending.Add(Write(routingKey, value));
                    await DrainAsync(pending, 10_000);
                }
            }

            await Task.WhenAll(pending);
            if (txn is not null)
            {
                await txn.CommitAsync(ct);
                Console.WriteLine($"Committed transaction {txn.Id}: {written} events to {scope}/{stream}.");
                return 0;
            }

            await writer.FlushAsync(ct);
            Console.WriteLine($"Wrote {written} events to {scope}/{stream}.");
            return 0;
        }));
        return command;
    }

    /// <summary>Prints "acked I" for each event as it becomes durable (for scripts and fault tests).</summary>
    private sealed class AckReporter
    {
        public async Task Track(Task write, long index)
        {
            await write;
            Console.Out.WriteLine("acked " + index.ToString(CultureInfo.InvariantCulture)); // Console.Out is synchronized and flushes each line
        }
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
