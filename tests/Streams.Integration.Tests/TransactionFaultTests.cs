using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Transactions;
using Streams.Client.Writing;
using Streams.Common.Grpc;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A decided commit survives the crash of the processes that were to carry it out, on a cluster of real processes
/// (ZooKeeper, 2 bookies, controllers, one segment store). The segment store is frozen (SIGSTOP) so that no merge can
/// happen, the commit is decided (COMMITTING recorded), and then the segment store is SIGKILLed and started again, or
/// the controller that decided is SIGKILLed and the other one, once leading, finds the stalled commit in its sweep.
/// Either way the transaction ends COMMITTED and the stream holds each of its events exactly once (a merge that is
/// not idempotent would show duplicates: merges are sent again after both faults); reads polled all along see, per
/// segment, none of the transaction's events or all of them, never a part.
/// </summary>
[Collection(TransactionCollection.Name)]
public sealed class TransactionFaultTests
{
    private const int Containers = 4;

    /// <summary>More segments than containers: the transaction spans every container.</summary>
    private const int Segments = 8;

    private const int Keys = 32;
    private const int EventsPerKey = 10;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);

    [Fact]
    public async Task A_commit_decided_while_the_segment_store_is_frozen_completes_after_the_store_is_killed_and_restarted()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 2, stores: 1, quorums: (2, 2, 2), containers: Containers);
        await cluster.RunAsync(async c =>
        {
            await c.WaitForContainersAsync(Containers, Bound);
            const string Scope = "txstorekill";
            await using var client = ProcessTestClients.ForFaults(c.ControllerUri);
            var (writer, transaction, expected) = await WriteTransactionAsync(client, Scope);
            await using var disposeWriter = writer;
            var storeUri = c.SegmentStores[0].ControllerUri; // the restarted store keeps its ports
            var polls = await SegmentPolls.StartAsync(storeUri, await SegmentNamesAsync(client, Scope));

            c.SegmentStores[0].Suspend();
            var commit = Task.Run(() => transaction.CommitAsync());
            await WaitForStatusAsync(client, Scope, transaction.Id, TransactionStatus.Committing);
            await Task.Delay(500); // the controller's merges reach the frozen store and wait there
            Assert.False(commit.IsCompleted, "The commit completed while the segment store was frozen.");

            TestContext.Current.TestOutputHelper?.WriteLine($"SIGKILL segment store pid {c.SegmentStores[0].Pid} with transaction {transaction.Id} committing");
            await c.RestartSegmentStoreAsync(0);
            await c.WaitForContainersAsync(Containers, Bound);
            await commit.WaitAsync(Bound);
            await WaitForStatusAsync(client, Scope, transaction.Id, TransactionStatus.Committed);

            await VerifyAsync(client, storeUri, Scope, transaction.Id, expected, await polls.StopAsync());
            await transaction.DisposeAsync();
        }, TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task A_commit_whose_controller_is_killed_after_deciding_it_is_finished_by_the_new_leaders_sweep()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 2, stores: 1, quorums: (2, 2, 2), containers: Containers, controllers: 2,
            environment: new()
            {
                ["STREAMS__Transactions__StalledCommitAfter"] = "00:00:02",
                ["STREAMS__Transactions__SweepInterval"] = "00:00:00.250",
            });
        await cluster.RunAsync(async c =>
        {
            await c.WaitForContainersAsync(Containers, Bound);
            var leader = await WaitForLeaderAsync(c, except: null);
            var survivor = 1 - leader;
            const string Scope = "txcontrollerkill";
            // The leader first: the writes and the commit go to it; once it is dead the client moves to the other.
            await using var client = ProcessTestClients.ForFaults($"{c.Controllers[leader].ControllerUri},{c.Controllers[survivor].ControllerUri}");
            var (writer, transaction, expected) = await WriteTransactionAsync(client, Scope);
            await using var disposeWriter = writer;
            var storeUri = c.SegmentStores[0].ControllerUri;
            var polls = await SegmentPolls.StartAsync(storeUri, await SegmentNamesAsync(client, Scope));
            var segmentIds = (await client.Streams.DescribeStreamAsync(Scope, "events")).ActiveSegments.Select(s => s.Id).ToList();

            c.SegmentStores[0].Suspend();
            // Decided at the leader, without waiting for the merges; nobody asks again, so only a sweep can finish it.
            using (var channel = GrpcChannels.Create(c.Controllers[leader].ControllerUri))
            {
                var request = new CommitTransactionRequest { Transaction = new TransactionRef { Scope = Scope, Stream = "events", TransactionId = transaction.Id }, Wait = false };
                request.SegmentIds.AddRange(segmentIds);
                var decided = await new Transactions.TransactionsClient(channel).CommitTransactionAsync(request, deadline: DateTime.UtcNow + Bound);
                Assert.Equal(TransactionState.Committing, decided.State);
            }

            await Task.Delay(300); // the leader sends its merges to the frozen store
            var killedAt = DateTime.UtcNow;
            TestContext.Current.TestOutputHelper?.WriteLine($"SIGKILL leading controller {leader} (pid {c.Controllers[leader].Pid}) with transaction {transaction.Id} committing; thaw the segment store");
            c.Controllers[leader].Kill();
            c.SegmentStores[0].Resume();

            await using var survivorClient = ProcessTestClients.ForFaults(c.Controllers[survivor].ControllerUri);
            Assert.Equal(survivor, await WaitForLeaderAsync(c, except: leader));
            await WaitForStatusAsync(survivorClient, Scope, transaction.Id, TransactionStatus.Committed);
            var finished = DateTime.UtcNow - killedAt;
            Assert.Contains("have been committing for more than 2 s; merging them again", c.Controllers[survivor].Output, StringComparison.Ordinal);

            await VerifyAsync(survivorClient, storeUri, Scope, transaction.Id, expected, await polls.StopAsync());
            TestContext.Current.TestOutputHelper?.WriteLine($"committed by the new leader's sweep {finished.TotalSeconds:F2} s after the deciding controller's SIGKILL");
            await transaction.DisposeAsync();
        }, TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);
    }

    /// <summary>A stream of <see cref="Segments"/> segments and an open transaction holding events over <see cref="Keys"/> keys, all durable.</summary>
    private static async Task<(EventStreamWriter<string> Writer, ITransaction<string> Transaction, List<string> Expected)> WriteTransactionAsync(StreamsClient client, string scope)
    {
        var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, scope, Segments);
        var transaction = await writer.BeginTransactionAsync();
        var expected = new List<string>();
        var writes = new List<Task>();
        for (var i = 0; i < EventsPerKey; i++)
        {
            for (var key = 0; key < Keys; key++)
            {
                var payload = Payload(scope, key, i);
                expected.Add(payload);
                writes.Add(transaction.WriteEventAsync(KeyName(key), payload));
            }
        }

        await Task.WhenAll(writes).WaitAsync(Bound);
        await transaction.FlushAsync();
        Assert.Equal(TransactionStatus.Open, await transaction.CheckStatusAsync());
        return (writer, transaction, expected);
    }

    private static string KeyName(int key) => "k" + key.ToString(CultureInfo.InvariantCulture);

    private static string Payload(string scope, int key, int i) => string.Create(CultureInfo.InvariantCulture, $"{scope}:{KeyName(key)}:{i:D3}");

    private static async Task<List<string>> SegmentNamesAsync(StreamsClient client, string scope) =>
        [.. (await client.Streams.DescribeStreamAsync(scope, "events")).ActiveSegments.Select(s => s.Name)];

    private static Task WaitForStatusAsync(StreamsClient client, string scope, string id, TransactionStatus status) =>
        TransactionProcessTests.WaitForStatusAsync(client, scope, "events", id, status);

    /// <summary>
    /// After the commit: every event once in the stream, each key's in the order written; each segment as the polls
    /// saw it, none or all; and the merges sent once more (as a late or repeated request would be) change nothing.
    /// </summary>
    private static async Task VerifyAsync(StreamsClient client, string storeUri, string scope, string id, List<string> expected, List<(string Segment, List<string> Seen)> polls)
    {
        var read = new List<(string Value, string? Key, string Segment)>();
        await foreach (var e in client.CreateReader(scope, "events", Serializers.Utf8).ReadAllAsync())
        {
            read.Add((e.Value, e.RoutingKey, e.Position.Segment));
        }

        var duplicates = read.GroupBy(r => r.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key} ×{g.Count()}").ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} events read more than once, e.g. {string.Join(", ", duplicates.Take(5))}");
        var missing = expected.Except(read.Select(r => r.Value)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} events of the committed transaction are missing, e.g. {string.Join(", ", missing.Take(5))}");
        Assert.Equal(expected.Count, read.Count);
        foreach (var key in read.GroupBy(r => r.Key))
        {
            Assert.Single(key.Select(r => r.Segment).Distinct());
            Assert.Equal(key.Select(r => r.Value).Order(StringComparer.Ordinal), key.Select(r => r.Value));
        }

        // The segments as the store holds them now: the whole transaction's part, once.
        var final = new Dictionary<string, List<string>>();
        foreach (var segment in polls.Select(p => p.Segment).Distinct())
        {
            final[segment] = await TransactionProbes.TryReadSegmentAsync(storeUri, segment, TimeSpan.FromSeconds(10))
                ?? throw new TimeoutException($"{segment} could not be read after the commit.");
        }

        Assert.Equal(expected.Order(StringComparer.Ordinal), final.Values.SelectMany(v => v).Order(StringComparer.Ordinal));
        var partial = polls.Where(p => p.Seen.Count > 0 && !p.Seen.SequenceEqual(final[p.Segment])).ToList();
        Assert.True(partial.Count == 0,
            $"{partial.Count} polled reads saw part of the transaction on a segment, e.g. {string.Join("; ", partial.Take(3).Select(p => $"{p.Segment}: {p.Seen.Count} of {final[p.Segment].Count}"))}");
        var (none, all) = (polls.Count(p => p.Seen.Count == 0), polls.Count(p => p.Seen.Count > 0));
        TestContext.Current.TestOutputHelper?.WriteLine($"{read.Count} events read once each; polled reads per segment: {none} saw none, {all} saw all, 0 saw a part");
        Assert.True(none > 0 && all > 0, $"The polls did not see both sides of the commit ({none} none, {all} all).");

        // A merge request repeated after the commit (a retry, a second controller) copies nothing again.
        using var channel = GrpcChannels.Create(storeUri);
        var store = new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel);
        foreach (var (segment, events) in final)
        {
            var source = TransactionName.Compose(segment, Guid.ParseExact(id, "N"));
            var again = await store.MergeSegmentsAsync(new MergeSegmentsRequest { Target = segment, Sources = { source } }, deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal(0, again.Merged);
            Assert.False(await TransactionProbes.ExistsAsync(storeUri, source), $"{source} still exists after the commit.");
            Assert.Equal(events, await TransactionProbes.TryReadSegmentAsync(storeUri, segment, TimeSpan.FromSeconds(10)));
        }
    }

    private static async Task<int> WaitForLeaderAsync(ClusterProcesses cluster, int? except)
    {
        int? found = null;
        await Waiting.UntilAsync(async () => (found = await cluster.LeadingControllerAsync()) is { } index && index != except,
            "a controller led", Bound, TimeSpan.FromMilliseconds(50));
        return found!.Value;
    }

    /// <summary>
    /// Reads every segment from its start to its tail, round after round, until stopped (at most 5,000 reads or
    /// 3 minutes): what each read that the store answered saw. Reads the store does not answer (frozen, dead,
    /// recovering) are skipped.
    /// </summary>
    private sealed class SegmentPolls
    {
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(3));
        private readonly List<(string Segment, List<string> Seen)> _seen = [];
        private Task _loop = Task.CompletedTask;

        /// <summary>Starts polling; returns once every segment was read once (before the commit: none of it).</summary>
        public static async Task<SegmentPolls> StartAsync(string storeUri, IReadOnlyList<string> segments)
        {
            var polls = new SegmentPolls();
            polls._loop = Task.Run(() => polls.RunAsync(storeUri, segments));
            await Waiting.UntilAsync(() => polls.Count >= segments.Count || polls._loop.IsCompleted, "every segment was polled once", Bound);
            return polls;
        }

        private int Count
        {
            get
            {
                lock (_seen)
                {
                    return _seen.Count;
                }
            }
        }

        public async Task<List<(string Segment, List<string> Seen)>> StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
            return _seen;
        }

        private async Task RunAsync(string storeUri, IReadOnlyList<string> segments)
        {
            for (var i = 0; i < 5_000 && !_stop.IsCancellationRequested; i++)
            {
                var segment = segments[i % segments.Count];
                if (await TransactionProbes.TryReadSegmentAsync(storeUri, segment, TimeSpan.FromSeconds(1)) is { } seen)
                {
                    lock (_seen)
                    {
                        _seen.Add((segment, seen));
                    }
                }
                else
                {
                    await Task.Delay(50, CancellationToken.None);
                }
            }
        }
    }
}
