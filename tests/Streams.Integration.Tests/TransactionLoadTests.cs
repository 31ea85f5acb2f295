using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Transactions;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Transactions under load on a real `streams standalone` process: a thousand concurrent commits on one stream all
/// land, each event once, while the process's resident memory stays bounded; and commits racing manual scales all
/// commit, every event visible once and after everything committed earlier on its key, whether the transaction's
/// segments were sealed by a scale before its first write, during its writes, or not at all.
/// </summary>
[Collection(TransactionCollection.Name)]
public sealed class TransactionLoadTests(TransactionStandaloneFixture fixture)
{
    private const int Transactions = 1_000;

    /// <summary>Events per transaction: two keys, two events each, so most transactions touch two segments.</summary>
    private const int EventsPerTransaction = 4;

    [Fact]
    public async Task A_thousand_concurrent_transactions_commit_every_event_once_with_bounded_memory()
    {
        var (scope, stream) = ("txload", "events");
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync(scope);
        await client.Streams.CreateStreamAsync(scope, stream, StreamConfig.Fixed(4));
        await using var writer = await client.CreateWriterAsync(scope, stream, Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true });

        // A few transactions first, so that the code paths are warm and the baseline is the process at work.
        for (var i = 0; i < 5; i++)
        {
            await RunOneAsync(writer, $"warm{i}");
        }

        var pid = fixture.Server.Pid;
        var before = TransactionProbes.ResidentBytes(pid);
        var peak = before;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, TransactionProbes.ResidentBytes(pid));
                await Task.Delay(100, CancellationToken.None);
            }
        });

        var clock = Stopwatch.StartNew();
        var completions = new ConcurrentBag<TimeSpan>();
        // Every transaction begun, written and committing at once (nothing throttles them on the client's side).
        await Task.WhenAll(Enumerable.Range(0, Transactions).Select(i => Task.Run(async () =>
        {
            await RunOneAsync(writer, i.ToString("D4", CultureInfo.InvariantCulture));
            completions.Add(clock.Elapsed);
        }))).WaitAsync(TimeSpan.FromSeconds(120));
        var took = clock.Elapsed;
        await sampling.CancelAsync();
        await sampler;
        var after = TransactionProbes.ResidentBytes(pid);

        var read = await TransactionProcessTests.ReadAllAsync(client, scope, stream);
        var expected = Enumerable.Range(0, Transactions).SelectMany(i => Payloads(i.ToString("D4", CultureInfo.InvariantCulture))).ToList();
        var duplicates = read.GroupBy(v => v).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"{duplicates.Count} events read more than once, e.g. {string.Join(", ", duplicates.Take(5))}");
        var missing = expected.Except(read).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} committed events missing, e.g. {string.Join(", ", missing.Take(5))}");
        Assert.Equal(expected.Count + (5 * EventsPerTransaction), read.Count);

        var listed = await client.Streams.ListTransactionsAsync(scope, stream);
        Assert.Equal(Transactions + 5, listed.Count(t => t.Status == TransactionStatus.Committed));

        var growth = peak - before;
        var sorted = completions.Order().ToList();
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{Transactions} transactions × {EventsPerTransaction} events committed in {took.TotalSeconds:F1} s (first done at {sorted[0].TotalSeconds:F1} s, median {sorted[sorted.Count / 2].TotalSeconds:F1} s)");
        TestContext.Current.TestOutputHelper?.WriteLine("| standalone process RSS | MiB |");
        TestContext.Current.TestOutputHelper?.WriteLine("|---|---|");
        TestContext.Current.TestOutputHelper?.WriteLine($"| before | {before >> 20} |");
        TestContext.Current.TestOutputHelper?.WriteLine($"| peak during the commits | {peak >> 20} |");
        TestContext.Current.TestOutputHelper?.WriteLine($"| after | {after >> 20} |");
        // The process hosts the controller and the segment store. A committing transaction costs the controller a
        // queue entry and its record in the metadata store; the store merges at most 2 sources per container at a time.
        // 200 MiB is generous: a controller that kept every transaction's data or record set in memory would pass it
        // only for far smaller loads, and an unbounded merge fan-out would hold 1,000 sources at once.
        Assert.True(growth < 200L << 20, $"The process's RSS grew by {growth >> 20} MiB (from {before >> 20} to a peak of {peak >> 20} MiB) during {Transactions} commits.");
    }

    private static async Task RunOneAsync(EventStreamWriter<string> writer, string name)
    {
        await using var transaction = await writer.BeginTransactionAsync();
        var payloads = Payloads(name);
        for (var e = 0; e < payloads.Count; e++)
        {
            await transaction.WriteEventAsync($"key-{name}-{e % 2}", payloads[e]);
        }

        await transaction.CommitAsync();
    }

    private static List<string> Payloads(string name) => [.. Enumerable.Range(0, EventsPerTransaction).Select(e => $"tx{name}:{e}")];

    [Fact]
    public async Task Commits_racing_scales_all_commit_in_per_key_order_with_every_event_once()
    {
        const int Keys = 8;
        const int Rounds = 12;
        const int EventsPerRound = 3;
        var (scope, stream) = ("txscale", "events");
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync(scope);
        await client.Streams.CreateStreamAsync(scope, stream, StreamConfig.Fixed(2));
        await using var writer = await client.CreateWriterAsync(scope, stream, Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true });

        // Each key commits its rounds one after the other: round r's commit completes before round r + 1 begins, so
        // the key's committed rounds must be read in increasing order. The keys run at once and share segments (and
        // merge rounds).
        var outcomes = new ConcurrentDictionary<(int Key, int Round), string>();
        var completed = 0;
        async Task KeyAsync(int key)
        {
            for (var round = 0; round < Rounds; round++)
            {
                outcomes[(key, round)] = await CommitRoundAsync(client, writer, scope, stream, key, round, EventsPerRound);
                Interlocked.Increment(ref completed);
            }
        }

        var keys = Task.WhenAll(Enumerable.Range(0, Keys).Select(k => Task.Run(() => KeyAsync(k))));
        var scales = new List<string>();
        for (var scale = 0; scale < 3; scale++)
        {
            var target = (scale + 1) * Keys * Rounds / 4;
            await Waiting.UntilAsync(() => Volatile.Read(ref completed) >= target || keys.IsCompleted, $"{target} rounds completed", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(10));
            var described = await client.Streams.DescribeStreamAsync(scope, stream);
            var sorted = described.ActiveSegments.OrderBy(s => s.KeyStart).ToList();
            var scaling = Stopwatch.StartNew();
            var after = scale < 2
                ? await client.Streams.ScaleStreamAsync(scope, stream, [sorted[^1].Id], [(sorted[^1].KeyStart, (sorted[^1].KeyStart + sorted[^1].KeyEnd) / 2), ((sorted[^1].KeyStart + sorted[^1].KeyEnd) / 2, sorted[^1].KeyEnd)])
                : await client.Streams.ScaleStreamAsync(scope, stream, [sorted[0].Id, sorted[1].Id], [(sorted[0].KeyStart, sorted[1].KeyEnd)]);
            scales.Add($"epoch {described.Epoch} -> {after.Epoch} at round {target} in {scaling.Elapsed.TotalSeconds:F1} s");
        }

        await keys.WaitAsync(TimeSpan.FromSeconds(120));

        var read = new List<(string Value, string? Key)>();
        await foreach (var e in client.CreateReader(scope, stream, Serializers.Utf8).ReadAllAsync())
        {
            read.Add((e.Value, e.RoutingKey));
        }

        var counts = outcomes.Values.GroupBy(o => o).ToDictionary(g => g.Key, g => g.Count());
        TestContext.Current.TestOutputHelper?.WriteLine($"{string.Join("; ", scales)}; outcomes: {string.Join(", ", counts.Select(c => $"{c.Key} {c.Value}"))}");
        Assert.Equal(Keys * Rounds, outcomes.Count);
        Assert.All(outcomes, o => Assert.True(o.Value == Committed, $"key {o.Key.Key} round {o.Key.Round}: {o.Value}"));

        var duplicates = read.GroupBy(r => r.Value).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, $"Events read more than once: {string.Join(", ", duplicates.Take(5))}");
        for (var key = 0; key < Keys; key++)
        {
            var name = KeyName(key);
            var events = read.Where(r => r.Key == name).Select(r => r.Value).ToList();
            // Exactly the committed rounds' events, in round order, each round's events in the order written.
            var expected = Enumerable.Range(0, Rounds).Where(r => outcomes[(key, r)] == Committed)
                .SelectMany(r => Enumerable.Range(0, EventsPerRound).Select(e => Payload(key, r, e))).ToList();
            Assert.Equal(expected, events);
        }
    }

    private const string Committed = "committed";

    private static string KeyName(int key) => "k" + key.ToString(CultureInfo.InvariantCulture);

    private static string Payload(int key, int round, int e) => string.Create(CultureInfo.InvariantCulture, $"{KeyName(key)}:{round:D3}:{e}");

    /// <summary>One round of one key: begin, write, commit; what became of it.</summary>
    private static async Task<string> CommitRoundAsync(StreamsClient client, EventStreamWriter<string> writer, string scope, string stream, int key, int round, int events)
    {
        var transaction = await writer.BeginTransactionAsync();
        try
        {
            for (var e = 0; e < events; e++)
            {
                await transaction.WriteEventAsync(KeyName(key), Payload(key, round, e));
            }

            try
            {
                await transaction.CommitAsync();
            }
            catch (TransactionFailedException e)
            {
                var status = await client.Streams.GetTransactionAsync(scope, stream, transaction.Id);
                return $"commit failed: {e.StatusCode} {e.Message}; {status.Status} {status.AbortReason}";
            }

            var committed = await client.Streams.GetTransactionAsync(scope, stream, transaction.Id);
            return committed.Status == TransactionStatus.Committed ? Committed : $"commit answered but {committed.Status}";
        }
        finally
        {
            await transaction.DisposeAsync();
        }
    }
}
