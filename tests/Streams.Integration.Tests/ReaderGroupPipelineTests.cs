using System.Globalization;
using System.Text.Json;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// The exactly-once pipeline on a cluster of real processes (3 bookies E3/Qw3/Qa2, 2 segment stores): two writer
/// processes with stable writer ids and their own event numbers (`streams write --writer-id --sequence-from`), one
/// SIGKILLed and restarted under its id re-sending everything; two reader processes of one group (`streams read
/// --group`), one SIGKILLed and restarted under its reader id; a segment store SIGKILLed and restarted while both go on.
/// The set of events the group reads is the set acknowledged to the writers, each stored once, each key in order; what
/// is read twice is only what the killed reader printed after its last commit.
/// </summary>
public sealed class ReaderGroupPipelineTests(ITestOutputHelper output)
{
    private const int EventsPerWriter = 3000;

    [Fact]
    public async Task Writers_readers_and_a_segment_store_killed_the_group_reads_every_acknowledged_event_once_in_key_order()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 2, quorums: (3, 3, 2), containers: 4);
        await cluster.RunAsync(async c =>
        {
            string[] at = ["--controller", c.ControllerUri];
            await Cli([.. at, "stream", "create", "pipe/events", "--create-scope", "--segments", "4"]);
            await Cli([.. at, "readergroup", "create", "pipe/workers", "--stream", "pipe/events", "--heartbeat-ms", "500", "--session-timeout-ms", "4000"]);

            var readers = new List<(string Id, StreamsProcess Process)>();
            StreamsProcess StartReader(string id)
            {
                var process = StreamsProcess.StartClient(["read", "pipe/events", "--group", "workers", "--reader", id, "--format", "json", .. at]);
                readers.Add((id, process));
                return process;
            }

            var firstReader = StartReader("r1");
            StartReader("r2");

            var w1Lines = Lines("w1", EventsPerWriter);
            var w2Lines = Lines("w2", EventsPerWriter);
            var w1Id = Guid.NewGuid().ToString();
            var w1 = StartWriter(w1Id, at);
            var w2 = StartWriter(Guid.NewGuid().ToString(), at);
            var feeding1 = FeedAsync(w1, w1Lines, EventsPerWriter);
            var feeding2 = FeedAsync(w2, w2Lines, EventsPerWriter);

            // Writer 1 dies with events in flight; its successor, same id, sends everything again with the same numbers.
            await WaitUntilAsync(() => Acked(w1) >= EventsPerWriter / 4, () => "writer 1 acknowledges a quarter:\n" + Tail(w1) + "\nreader r1:\n" + Tail(firstReader));
            w1.Kill();
            await feeding1.ContinueWith(_ => { }, TaskScheduler.Default);
            output.WriteLine($"SIGKILL writer 1 after {Acked(w1)} acknowledged");
            var w1Again = StartWriter(w1Id, at);
            feeding1 = FeedAsync(w1Again, w1Lines, EventsPerWriter);

            // Reader r1 dies mid-stream; it comes back under its id.
            await WaitUntilAsync(() => Printed(firstReader).Count >= 1000, "reader r1 prints 1000 events");
            firstReader.Kill();
            output.WriteLine($"SIGKILL reader r1 after {Printed(firstReader).Count} printed");
            StartReader("r1");

            // A segment store dies while both writers and readers go on.
            await WaitUntilAsync(() => Acked(w2) >= EventsPerWriter * 2 / 3, "writer 2 acknowledges two thirds");
            output.WriteLine($"SIGKILL segment store pid {c.SegmentStores[0].Pid}");
            c.SegmentStores[0].Kill();
            await Task.Delay(TimeSpan.FromSeconds(2));
            await c.RestartSegmentStoreAsync(0);

            await Task.WhenAll(feeding1, feeding2);
            foreach (var writer in new[] { w1Again, w2 })
            {
                writer.Input.Close();
                Assert.True(await writer.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, "streams write failed:\n" + writer.Output);
            }

            await Cli([.. at, "stream", "seal", "pipe/events"]);
            foreach (var (id, reader) in readers.Where(r => r.Process != firstReader))
            {
                Assert.True(await reader.WaitForExitAsync(TimeSpan.FromSeconds(90)) == 0, $"reader {id} did not end with the group:\n" + reader.Output);
            }

            var acknowledged = w1Lines.Concat(w2Lines).Select(ValueOf).ToHashSet();
            var all = readers.SelectMany(r => Printed(r.Process).Select(e => (Reader: r.Process, Event: e))).ToList();
            var survivors = all.Where(x => x.Reader != firstReader).Select(x => x.Event).ToList();

            // Every acknowledged event read, nothing else; each stored once (one position per event).
            Assert.Equal(acknowledged.Order(), all.Select(x => x.Event.Value).Distinct().Order());
            Assert.All(all.GroupBy(x => x.Event.Value), g => Assert.Single(g.Select(x => (x.Event.Segment, x.Event.Offset)).Distinct()));

            // Read twice only what the killed reader printed after its last commit: the others read each event once.
            Assert.Equal(survivors.Count, survivors.Select(e => e.Value).Distinct().Count());

            // Each key's events, by position, in the order its writer numbered them.
            foreach (var key in all.Select(x => x.Event).DistinctBy(e => e.Value).GroupBy(e => e.Key))
            {
                var order = key.OrderBy(e => e.Offset).Select(e => SequenceOf(e.Value)).ToList();
                Assert.Single(key.Select(e => e.Segment).Distinct());
                Assert.Equal(order.Order(), order);
            }

            var again = all.Count - acknowledged.Count;
            output.WriteLine($"{acknowledged.Count} acknowledged, {all.Count} printed ({again} again after r1's SIGKILL), by reader: "
                + string.Join(", ", readers.Select(r => $"{r.Id} {Printed(r.Process).Count}")));
        }, TimeSpan.FromMinutes(4));
    }

    [Fact]
    public async Task The_leading_controller_SIGKILLed_under_two_group_readers_the_next_one_carries_the_group_on_and_no_event_is_read_twice()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 1, quorums: (3, 3, 2), containers: 4, controllers: 2);
        await cluster.RunAsync(async c =>
        {
            string[] at = ["--controller", c.ControllerUri];
            await Cli([.. at, "stream", "create", "failover/events", "--create-scope", "--segments", "4"]);
            await Cli([.. at, "readergroup", "create", "failover/workers", "--stream", "failover/events", "--heartbeat-ms", "500", "--session-timeout-ms", "10000"]);
            var readers = new[] { "r1", "r2" }.Select(id => StreamsProcess.StartClient(["read", "failover/events", "--group", "workers", "--reader", id, "--format", "json", .. at])).ToList();
            var lines = Lines("w", EventsPerWriter);
            var writer = StreamsProcess.StartClient(["write", "failover/events", "--key-separator", ":", "--writer-id", Guid.NewGuid().ToString(), "--report-acks", .. at]);
            var feeding = FeedAsync(writer, lines, EventsPerWriter);

            await WaitUntilAsync(() => readers.Sum(r => Printed(r).Count) >= EventsPerWriter / 3, "the readers print a third");
            var leader = await c.LeadingControllerAsync() ?? throw new InvalidOperationException("No controller leads.");
            var printedAtKill = readers.Sum(r => Printed(r).Count);
            output.WriteLine($"SIGKILL leading controller {leader} (pid {c.Controllers[leader].Pid}) after {printedAtKill} events printed");
            c.Controllers[leader].Kill();
            await WaitUntilAsync(() => readers.Sum(r => Printed(r).Count) >= printedAtKill + 500, () => "the readers go on under the next leader:\n" + string.Join("\n", readers.Select(Tail)));
            await c.RestartControllerAsync(leader);

            await feeding;
            writer.Input.Close();
            Assert.True(await writer.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, "streams write failed:\n" + writer.Output);
            await Cli([.. at, "stream", "seal", "failover/events"]);
            foreach (var reader in readers)
            {
                Assert.True(await reader.WaitForExitAsync(TimeSpan.FromSeconds(90)) == 0, "a reader did not end with the group:\n" + reader.Output);
            }

            // The readers kept their segments through the failover (the new leader gave their sessions a grace
            // period): every event read once, by one of them.
            var all = readers.SelectMany(Printed).ToList();
            Assert.Equal(lines.Select(ValueOf).Order(), all.Select(e => e.Value).Order());
            Assert.All(readers, r => Assert.NotEmpty(Printed(r)));
            output.WriteLine($"{all.Count} events read once each: " + string.Join(", ", readers.Select(r => Printed(r).Count)));
        }, TimeSpan.FromMinutes(4));
    }

    private static async Task Cli(string[] args)
    {
        var result = await StreamsProcess.RunAsync(args);
        Assert.True(result.ExitCode == 0, $"streams {string.Join(' ', args)} failed: {result.Stdout} {result.Stderr}");
    }

    private static StreamsProcess StartWriter(string writerId, string[] at) =>
        StreamsProcess.StartClient(["write", "pipe/events", "--key-separator", ":", "--writer-id", writerId, "--report-acks", "--sequence-from", "1", .. at]);

    /// <summary>Feeds every line, a few at a time, never more than 400 ahead of the acknowledgements; ends when all are acknowledged.</summary>
    private static async Task FeedAsync(StreamsProcess writer, IReadOnlyList<string> lines, int total)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        var sent = 0;
        while (Acked(writer) < total)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Acked(writer)} of {total} acknowledged after 3 minutes:\n{writer.Output}");
            }

            for (var i = 0; i < 25 && sent < total && sent - Acked(writer) < 400; i++)
            {
                await writer.Input.WriteLineAsync(lines[sent++]);
            }

            await writer.Input.FlushAsync();
            await Task.Delay(25);
        }
    }

    /// <summary>"key:value" lines: writer-scoped keys, values naming the writer and the event's number.</summary>
    private static List<string> Lines(string writer, int count) =>
        [.. Enumerable.Range(0, count).Select(i => $"{writer}-k{i % 8}:{writer}-{i.ToString(CultureInfo.InvariantCulture)}")];

    private static string ValueOf(string line) => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..];

    private static int SequenceOf(string value) => int.Parse(value[(value.IndexOf('-', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);

    private static int Acked(StreamsProcess writer) => writer.Output.Split('\n').Count(l => l.StartsWith("acked ", StringComparison.Ordinal));

    private static List<(string Key, string Segment, long Offset, string Value)> Printed(StreamsProcess reader) =>
        [.. reader.Output.Split('\n').Where(l => l.StartsWith("{\"key\"", StringComparison.Ordinal)).Select(l =>
        {
            var e = JsonDocument.Parse(l).RootElement;
            return (e.GetProperty("key").GetString()!, e.GetProperty("segment").GetString()!, e.GetProperty("offset").GetInt64(), e.GetProperty("value").GetString()!);
        })];

    private static Task WaitUntilAsync(Func<bool> condition, string what) => WaitUntilAsync(condition, () => what);

    private static Task WaitUntilAsync(Func<bool> condition, Func<string> failure) =>
        Waiting.UntilAsync(condition, failure, TimeSpan.FromSeconds(90), TimeSpan.FromMilliseconds(50));

    private static string Tail(StreamsProcess process) => process.Output.Length > 3000 ? process.Output[^3000..] : process.Output;
}
