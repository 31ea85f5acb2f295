using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Coordination.Tests.Cluster;

/// <summary>
/// One leader at a time, and always one while a candidate lives: leadership passes on the moment the leader's node
/// goes, a leader whose work failed leads again, and a leader whose node was taken away stops leading (a new leader
/// may overlap the old one for a moment, as with any lease in ZooKeeper; what they share is written by compare-and-set).
/// </summary>
public sealed class LeaderElectionTests
{
    private const string Path = "/cluster/leader";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_leader_whose_work_failed_leads_again_instead_of_leaving_its_node_to_nobody()
    {
        using var dir = new TempDirectory("election");
        await using var store = FileMetadataStore.Open(dir.Path);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var terms = 0;
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var election = new LeaderElection(store, Path, "a", NullLogger.Instance);
        var running = election.RunAsync(async leadership =>
        {
            if (Interlocked.Increment(ref terms) == 1)
            {
                throw new InvalidOperationException("the leader's work failed");
            }

            second.TrySetResult();
            await Task.Delay(Timeout.Infinite, leadership);
        }, stop.Token);

        await second.Task.WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.True(election.IsLeader);
        await stop.CancelAsync();
        await running.WaitAsync(Bound, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task A_leader_whose_node_is_deleted_stops_leading_and_one_candidate_takes_over()
    {
        using var dir = new TempDirectory("election");
        await using var store = FileMetadataStore.Open(dir.Path);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var terms = new List<string>();
        var firstEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondTerm = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Func<CancellationToken, Task> Lead(string name) => async leadership =>
        {
            int term;
            lock (terms)
            {
                terms.Add(name);
                term = terms.Count;
            }

            if (term == 2)
            {
                secondTerm.TrySetResult();
            }

            try
            {
                await Task.Delay(Timeout.Infinite, leadership);
            }
            finally
            {
                if (term == 1)
                {
                    firstEnded.TrySetResult();
                }
            }
        };

        var a = new LeaderElection(store, Path, "a", NullLogger.Instance);
        var b = new LeaderElection(store, Path, "b", NullLogger.Instance);
        var runA = a.RunAsync(Lead("a"), stop.Token);
        await WaitUntilAsync(() => a.IsLeader);
        var runB = b.RunAsync(Lead("b"), stop.Token);

        Assert.True(await store.TryDeleteAsync(Path, cancellationToken: TestContext.Current.CancellationToken));
        await firstEnded.Task.WaitAsync(Bound, TestContext.Current.CancellationToken);
        await secondTerm.Task.WaitAsync(Bound, TestContext.Current.CancellationToken);
        // The first term's work has ended; its IsLeader is cleared just after that work returns.
        await WaitUntilAsync(() => a.IsLeader ^ b.IsLeader);
        lock (terms)
        {
            Assert.Equal(2, terms.Count);
        }

        await stop.CancelAsync();
        await Task.WhenAll(runA, runB).WaitAsync(Bound, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task When_the_leaders_zookeeper_session_ends_another_candidate_leads_at_once()
    {
        await using var server = await ZooKeeperServer.StartAsync();
        var first = await ZooKeeperMetadataStore.ConnectAsync(server.ConnectionString, "/streams", TimeSpan.FromSeconds(4), NullLogger.Instance, TestContext.Current.CancellationToken);
        await using var second = await ZooKeeperMetadataStore.ConnectAsync(server.ConnectionString, "/streams", TimeSpan.FromSeconds(4), NullLogger.Instance, TestContext.Current.CancellationToken);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var a = new LeaderElection(first, Path, "a", NullLogger.Instance);
        var b = new LeaderElection(second, Path, "b", NullLogger.Instance);
        var runA = a.RunAsync(leadership => Task.Delay(Timeout.Infinite, leadership), stop.Token);
        await WaitUntilAsync(() => a.IsLeader);
        var runB = b.RunAsync(leadership => Task.Delay(Timeout.Infinite, leadership), stop.Token);
        await Task.Delay(300, TestContext.Current.CancellationToken); // b is waiting on its watch

        // Closing the session deletes its ephemeral node at once, as an expiry does one session timeout after a crash.
        var clock = Stopwatch.StartNew();
        await first.DisposeAsync();
        await WaitUntilAsync(() => b.IsLeader);
        TestContext.Current.TestOutputHelper?.WriteLine($"session closed -> new leader: {clock.ElapsedMilliseconds} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"b took {clock.Elapsed} to lead; the watch should wake it, not the recheck.");

        await stop.CancelAsync();
        await Task.WhenAll(runA, runB).WaitAsync(Bound, TestContext.Current.CancellationToken);
    }

    private static Task WaitUntilAsync(Func<bool> condition) =>
        Waiting.UntilAsync(condition, "the condition holds", Bound, cancellationToken: TestContext.Current.CancellationToken);
}
