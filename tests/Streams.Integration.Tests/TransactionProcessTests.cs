using System.Globalization;
using System.Text;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Transactions;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>The transaction tests share one standalone process and run one after the other (2 cores).</summary>
[CollectionDefinition(Name)]
public sealed class TransactionCollection : ICollectionFixture<TransactionStandaloneFixture>
{
    public const string Name = "transactions";
}

/// <summary>
/// Transactions that end without a commit, on a real `streams standalone` process driven by the real CLI: a writer
/// SIGKILLed with its transaction open is aborted when the lease runs out, and `streams transaction abort` aborts an
/// open one; either way nothing of it is ever visible to a reader, its transaction segments are gone from the segment
/// store (NOT_FOUND) and no Tier 2 chunk holds its bytes any more (they were flushed there first, so the deletion is
/// what is proved). And the CLI's own round trip: write in a transaction, list and inspect it, refuse to abort it.
/// </summary>
[Collection(TransactionCollection.Name)]
public sealed class TransactionProcessTests(TransactionStandaloneFixture fixture)
{
    private const int Keys = 16;
    private const int Events = 64;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_transaction_whose_writer_was_killed_is_aborted_at_its_lease_and_leaves_nothing_in_tier1_or_tier2()
    {
        var (scope, stream) = ("txlease", "events");
        var (writer, id, segments, marker) = await WriteOpenTransactionAsync(scope, stream, lease: "2");
        var killedAt = DateTime.UtcNow;
        writer.Kill(); // no abort, no more pings: only the lease can end it
        await writer.DisposeAsync();

        await using var client = fixture.CreateClient();
        var aborted = await WaitForStatusAsync(client, scope, stream, id, TransactionStatus.Aborted);
        var after = DateTime.UtcNow - killedAt;
        Assert.Contains("lease", aborted.AbortReason, StringComparison.Ordinal);
        // A 2 s lease, renewed every 0.67 s until the kill, swept every 250 ms: aborted within a few seconds, not sooner
        // than the lease allows.
        Assert.True(after < TimeSpan.FromSeconds(10), $"The expired transaction was aborted {after.TotalSeconds:F1} s after its writer died.");
        await AssertNothingLeftAsync(client, scope, stream, segments, marker);
        TestContext.Current.TestOutputHelper?.WriteLine($"aborted {after.TotalSeconds:F2} s after the writer's SIGKILL: {aborted.AbortReason}");
    }

    [Fact]
    public async Task An_open_transaction_aborted_from_the_cli_leaves_nothing_in_tier1_or_tier2()
    {
        var (scope, stream) = ("txabort", "events");
        var (writer, id, segments, marker) = await WriteOpenTransactionAsync(scope, stream, lease: null);
        try
        {
            var abort = await fixture.RunCliAsync(null, "transaction", "abort", $"{scope}/{stream}", id);
            Assert.True(abort.ExitCode == 0, $"abort failed: {abort.Stdout} {abort.Stderr}");
            Assert.Contains($"{id}  aborted", abort.Stdout, StringComparison.Ordinal);
            Assert.Contains("aborted by the client", abort.Stdout, StringComparison.Ordinal);

            // The writer still has its input open: the end of it cannot commit what was aborted.
            writer.Input.Close();
            Assert.NotEqual(0, await writer.WaitForExitAsync(Bound));
            Assert.DoesNotContain("Committed transaction", writer.Output, StringComparison.Ordinal);
        }
        finally
        {
            await writer.DisposeAsync();
        }

        await using var client = fixture.CreateClient();
        var aborted = await WaitForStatusAsync(client, scope, stream, id, TransactionStatus.Aborted);
        Assert.Equal("aborted by the client", aborted.AbortReason);
        await AssertNothingLeftAsync(client, scope, stream, segments, marker);
    }

    [Fact]
    public async Task The_cli_writes_a_transaction_lists_and_inspects_it_and_refuses_to_abort_it_once_committed()
    {
        var (scope, stream) = ("txcli", "lines");
        Assert.Equal(0, (await fixture.RunCliAsync(null, "scope", "create", scope)).ExitCode);
        Assert.Equal(0, (await fixture.RunCliAsync(null, "stream", "create", $"{scope}/{stream}", "--segments", "3")).ExitCode);

        var write = await fixture.RunCliAsync("a:first\nb:second\nc:third\na:fourth\n", "write", $"{scope}/{stream}", "--transaction", "--key-separator", ":");
        Assert.True(write.ExitCode == 0, $"write failed: {write.Stdout} {write.Stderr}");
        var id = TransactionProbes.BegunTransactionId(write.Stderr);
        Assert.True(id is not null, $"No transaction id on stderr: {write.Stderr}");
        Assert.Contains($"Committed transaction {id}: 4 events to {scope}/{stream}.", write.Stdout, StringComparison.Ordinal);

        var list = await fixture.RunCliAsync(null, "transaction", "list", $"{scope}/{stream}");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains($"1 transaction(s) on {scope}/{stream}", list.Stdout, StringComparison.Ordinal);
        Assert.Contains($"{id}  committed", list.Stdout, StringComparison.Ordinal);

        var status = await fixture.RunCliAsync(null, "transaction", "status", $"{scope}/{stream}", id);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains($"{id}  committed   epoch 0  finished ", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("merges into segment id(s) ", status.Stdout, StringComparison.Ordinal);

        var abort = await fixture.RunCliAsync(null, "transaction", "abort", $"{scope}/{stream}", id);
        Assert.Equal(1, abort.ExitCode);
        Assert.StartsWith("error: ", abort.Stderr, StringComparison.Ordinal);
        Assert.Contains("is committed; it can no longer be aborted", abort.Stderr, StringComparison.Ordinal);
        Assert.Single(abort.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var unknown = await fixture.RunCliAsync(null, "transaction", "status", $"{scope}/{stream}", Guid.NewGuid().ToString("N"));
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("has no transaction", unknown.Stderr, StringComparison.Ordinal);

        // The commit is still committed, and everything in it is read once, each key's events in order.
        Assert.Contains($"{id}  committed", (await fixture.RunCliAsync(null, "transaction", "status", $"{scope}/{stream}", id)).Stdout, StringComparison.Ordinal);
        var read = await fixture.RunCliAsync(null, "read", $"{scope}/{stream}", "--from-start");
        var lines = read.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["first", "fourth", "second", "third"], lines.Order(StringComparer.Ordinal));
        Assert.True(Array.IndexOf(lines, "first") < Array.IndexOf(lines, "fourth"), read.Stdout);
    }

    [Fact]
    public async Task A_transaction_that_first_writes_after_a_scale_sealed_its_segment_commits_into_the_successors_by_key()
    {
        var (scope, stream) = ("txsealed", "events");
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync(scope);
        await client.Streams.CreateStreamAsync(scope, stream, StreamConfig.Fixed(1));
        await using var writer = await client.CreateWriterAsync(scope, stream, Serializers.Utf8, new Client.Writing.EventWriterOptions { StoreRoutingKeys = true });
        await writer.WriteEventAsync("k0", "before");
        await using var transaction = await writer.BeginTransactionAsync();
        var only = (await client.Streams.DescribeStreamAsync(scope, stream)).ActiveSegments.Single();
        await client.Streams.ScaleStreamAsync(scope, stream, [only.Id], [(only.KeyStart, 0.5), (0.5, only.KeyEnd)]);

        // The transaction's segment under the sealed parent is created by the first write; the commit splits it by key.
        var keys = Enumerable.Range(0, 16).Select(i => $"k{i}").ToList();
        foreach (var key in keys)
        {
            await transaction.WriteEventAsync(key, $"{key}:in").WaitAsync(Bound);
        }

        await transaction.CommitAsync().WaitAsync(Bound);
        Assert.Equal(TransactionStatus.Committed, (await client.Streams.GetTransactionAsync(scope, stream, transaction.Id)).Status);
        await writer.WriteEventAsync("k0", "after");

        var read = await ReadAllAsync(client, scope, stream);
        Assert.Equal(keys.Count + 2, read.Count);
        Assert.Equal(["before", "k0:in", "after"], read.Where(r => r.StartsWith("k0:", StringComparison.Ordinal) || r is "before" or "after"));
        Assert.Equal(keys.Select(k => $"{k}:in").Order(), read.Where(r => r.EndsWith(":in", StringComparison.Ordinal)).Order());
    }

    /// <summary>
    /// Starts `streams write --transaction` on a new 4-segment stream, feeds it events over <see cref="Keys"/> keys
    /// through a stdin it never closes, and waits until every event is durable in the transaction and its bytes are in
    /// Tier 2. Returns the running writer, the transaction's id, its transaction segments that exist, and the marker
    /// every payload carries.
    /// </summary>
    private async Task<(StreamsProcess Writer, string Id, List<string> Segments, string Marker)> WriteOpenTransactionAsync(string scope, string stream, string? lease)
    {
        Assert.Equal(0, (await fixture.RunCliAsync(null, "scope", "create", scope)).ExitCode);
        Assert.Equal(0, (await fixture.RunCliAsync(null, "stream", "create", $"{scope}/{stream}", "--segments", "4")).ExitCode);
        var marker = "txn-" + Guid.NewGuid().ToString("N");
        List<string> args = ["write", $"{scope}/{stream}", "--transaction", "--key-separator", ":", "--report-acks", "--controller", fixture.Server.ControllerUri];
        if (lease is not null)
        {
            args.AddRange(["--transaction-lease", lease]);
        }

        var writer = StreamsProcess.StartClient(args);
        try
        {
            var lines = new StringBuilder();
            for (var i = 0; i < Events; i++)
            {
                lines.Append(CultureInfo.InvariantCulture, $"k{i % Keys}:{marker}-{i}\n");
            }

            await writer.Input.WriteAsync(lines.ToString());
            await writer.Input.FlushAsync();
            await Waiting.UntilAsync(() => Acked(writer.Output) == Events, () => $"The writer did not report {Events} events durable: {writer.Output}", Bound);
            var id = TransactionProbes.BegunTransactionId(writer.Output) ?? throw new InvalidOperationException($"No transaction id: {writer.Output}");

            await using var client = fixture.CreateClient();
            var status = await client.Streams.GetTransactionAsync(scope, stream, id);
            Assert.Equal(TransactionStatus.Open, status.Status);
            var segments = new List<string>();
            foreach (var segment in await TransactionProbes.TransactionSegmentsAsync(client, scope, stream, id))
            {
                if (await TransactionProbes.ExistsAsync(fixture.Server.ControllerUri, segment))
                {
                    segments.Add(segment);
                }
            }

            // 16 keys over 4 segments: every segment has events, so each has its transaction segment.
            Assert.Equal(4, segments.Count);
            // Flushed by age (0.5 s): the transaction's bytes are in Tier 2 before it ends.
            await Waiting.UntilAsync(() => TransactionProbes.ChunksHolding(fixture.Tier2Directory, marker).Count > 0,
                $"a Tier 2 chunk held the open transaction's events ({marker})", Bound, TimeSpan.FromMilliseconds(200));
            Assert.Empty(await ReadAllAsync(client, scope, stream));
            return (writer, id, segments, marker);
        }
        catch
        {
            await writer.DisposeAsync();
            throw;
        }
    }

    private static int Acked(string output) => output.Split('\n').Count(l => l.StartsWith("acked ", StringComparison.Ordinal));

    private async Task AssertNothingLeftAsync(StreamsClient client, string scope, string stream, List<string> segments, string marker)
    {
        foreach (var segment in segments)
        {
            Assert.False(await TransactionProbes.ExistsAsync(fixture.Server.ControllerUri, segment), $"{segment} still exists after the abort.");
        }

        // Chunks of deleted segments go once the deletion is durable, on the storage writer's next round.
        await Waiting.UntilAsync(() => TransactionProbes.ChunksHolding(fixture.Tier2Directory, marker).Count == 0,
            () => $"Tier 2 chunks still hold the aborted transaction's events: {string.Join(", ", TransactionProbes.ChunksHolding(fixture.Tier2Directory, marker))}",
            Bound, TimeSpan.FromMilliseconds(200));
        Assert.Empty(await ReadAllAsync(client, scope, stream));
    }

    internal static async Task<TransactionDescription> WaitForStatusAsync(StreamsClient client, string scope, string stream, string id, TransactionStatus status)
    {
        TransactionDescription? last = null;
        await Waiting.UntilAsync(async () => (last = await client.Streams.GetTransactionAsync(scope, stream, id)).Status == status,
            () => $"Transaction {id} did not become {status}: {last}", Bound, TimeSpan.FromMilliseconds(100));
        return last!;
    }

    internal static async Task<List<string>> ReadAllAsync(StreamsClient client, string scope, string stream)
    {
        var values = new List<string>();
        await foreach (var e in client.CreateReader(scope, stream, Serializers.Utf8).ReadAllAsync())
        {
            values.Add(e.Value);
        }

        return values;
    }
}
