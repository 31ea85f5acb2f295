using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Cluster;
using Streams.SegmentStore.Server;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>
/// Following the controller's assignment (ContainerOwnership.cs, with SegmentStoreService's container slots): one copy
/// of a container per process, restarts only against ownership read after the loss, and a lost session stops every
/// copy. Each race is staged step by step with held recoveries and held assignment reads.
/// </summary>
public sealed class ContainerOwnershipTests : IAsyncLifetime
{
    private const string Me = "store-a";
    private const string Other = "store-b";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private readonly TempDirectory _data = new("streams-ownership-data");
    private readonly SessionMetadataStore _store = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<int, InMemoryDurableDataLog> _records = [];
    private readonly List<(int Id, GatedDurableDataLog Log)> _logs = [];
    private readonly HashSet<int> _held = [];
    private SegmentStoreService _service = null!;
    private Task _following = Task.CompletedTask;
    private long _generation;

    public ValueTask InitializeAsync()
    {
        _service = new SegmentStoreService(
            new SegmentStoreOptions { DataDirectory = _data.Path, ContainerCount = 2 },
            id =>
            {
                lock (_logs)
                {
                    if (!_records.TryGetValue(id, out var records))
                    {
                        _records[id] = records = new InMemoryDurableDataLog();
                    }

                    var log = new GatedDurableDataLog(records);
                    if (!_held.Contains(id))
                    {
                        log.Gate.SetResult();
                    }

                    _logs.Add((id, log));
                    return log;
                }
            },
            NullLoggerFactory.Instance);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        lock (_logs)
        {
            _logs.ForEach(l => l.Log.Gate.TrySetResult());
        }

        await _following.WaitAsync(Bound);
        await _service.DisposeAsync();
        await _store.DisposeAsync();
        _stop.Dispose();
        _data.Dispose();
    }

    [Fact]
    public async Task A_pass_of_the_ownership_loop_during_a_restart_starts_no_second_copy()
    {
        await AssignAsync((0, Me));
        Follow();
        await WaitUntilAsync(() => _service.RunningContainers.Any(), "container 0 runs");

        // It fails; its restart waits in recovery.
        Hold(0);
        await FailAsync(0);
        await WaitUntilAsync(() => LogsOf(0).Count == 2 && LogsOf(0)[1].Opened.IsCompleted, "the restart recovers");

        // The loop reads the assignment again meanwhile (a new generation, same owner) and finds no running copy.
        var reads = _store.WatchedReads;
        await AssignAsync((0, Me));
        await WaitUntilAsync(() => _store.WatchedReads > reads, "the loop read the assignment again");
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.Equal(2, LogsOf(0).Count);

        Release(0);
        await WaitUntilAsync(() => _service.RunningContainers.Any(), "the restarted copy runs");
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.Equal(2, LogsOf(0).Count);
    }

    [Fact]
    public async Task A_container_fenced_by_its_new_owner_is_not_taken_back_from_an_old_view_of_the_assignment()
    {
        await AssignAsync((0, Me));
        Follow();
        await WaitUntilAsync(() => _service.RunningContainers.Any(), "container 0 runs");

        // The controller gives it to another store, which fences it before this store's loop has seen the change.
        _store.HoldWatchedReads();
        await AssignAsync((0, Other));
        await FailAsync(0);

        // Restarting now would fence the real owner; only an assignment read after the failure may decide.
        var deadline = DateTime.UtcNow.AddSeconds(2);
        while (DateTime.UtcNow < deadline && LogsOf(0).Count == 1)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Single(LogsOf(0));
        Assert.True(_store.Reads > 0, "The restart did not read the assignment.");
        _store.ReleaseWatchedReads();
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.Single(LogsOf(0));
        Assert.False(_service.IsRunning(0));
    }

    [Fact]
    public async Task A_lost_session_stops_every_copy_including_one_that_is_still_recovering()
    {
        Hold(1);
        await AssignAsync((0, Me), (1, Me));
        Follow();
        await WaitUntilAsync(() => _service.RunningContainers.Any() && LogsOf(1).Count == 1 && LogsOf(1)[0].Opened.IsCompleted, "0 runs and 1 recovers");

        // Both go to the other store while this one's session is lost; this store's loop does not get to read that
        // yet, so only the loss itself can stop the copies.
        await AssignAsync((0, Other), (1, Other));
        _store.HoldWatchedReads();
        _store.LoseSession();
        await WaitUntilAsync(() => !_service.IsRunning(0) && !_service.IsRunning(1), "both stopped");

        // The recovery that was cut short must not come back to life when its log answers.
        Release(1);
        await Task.Delay(500, TestContext.Current.CancellationToken);
        Assert.False(_service.IsRunning(0));
        Assert.False(_service.IsRunning(1));
        Assert.Empty(_service.RunningContainers);
        Assert.True(LogsOf(1)[0].IsDisposed);
        Assert.Single(LogsOf(1));
    }

    [Fact]
    public async Task After_a_lost_session_the_containers_still_assigned_start_again()
    {
        await AssignAsync((0, Me), (1, Me));
        Follow();
        await WaitUntilAsync(() => _service.RunningContainers.Count() == 2, "both run");

        await AssignAsync((0, Me), (1, Other));
        _store.LoseSession();

        await WaitUntilAsync(() => _service.IsRunning(0) && !_service.IsRunning(1) && LogsOf(0).Count == 2, "0 runs again, 1 does not");
        await WaitUntilAsync(() => _service.RunningContainers.Count() == 1, "0 serves");
    }

    [Fact]
    public async Task The_store_publishes_the_containers_it_serves_once_they_serve()
    {
        Hold(1);
        await AssignAsync((0, Me), (1, Me));
        Follow();
        await WaitUntilAsync(() => _service.IsServing(0), "0 serves");
        await WaitForServingAsync([0]);

        Release(1);
        await WaitForServingAsync([0, 1]);
        await AssignAsync((0, Me));
        await WaitForServingAsync([0]);
    }

    private async Task WaitForServingAsync(int[] expected)
    {
        var published = Array.Empty<int>();
        var deadline = DateTime.UtcNow + Bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await _store.GetAsync(ClusterPaths.ServingBy(Me), TestContext.Current.CancellationToken) is { } value)
            {
                published = [.. ClusterPaths.Deserialize<SegmentStoreServing>(value.Data).Containers];
                if (published.SequenceEqual(expected))
                {
                    return;
                }
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Equal(expected, published);
    }

    private void Follow()
    {
        var ownership = new ContainerOwnership(_service, _store, Me, NullLogger.Instance);
        _following = Task.Run(() => ownership.RunAsync(_stop.Token));
    }

    private async Task AssignAsync(params (int Id, string Owner)[] owners)
    {
        var assignment = new ContainerAssignment(++_generation, owners.ToDictionary(o => o.Id, o => o.Owner));
        var data = ClusterPaths.Serialize(assignment);
        if (!await _store.TryCreateAsync(ClusterPaths.Assignment, data, TestContext.Current.CancellationToken))
        {
            Assert.NotNull(await _store.TrySetAsync(ClusterPaths.Assignment, data, -1, TestContext.Current.CancellationToken));
        }
    }

    /// <summary>The container's log fails (as when fenced): its next write fails the container.</summary>
    private async Task FailAsync(int id)
    {
        var container = _service.RunningContainers.Single(c => c.Id == id);
        _records[id].FailAppends = true;
        await container.CreateSegmentAsync("scope/stream/fail", TestContext.Current.CancellationToken);
        await WaitUntilAsync(() => container.Failed.IsCompleted, $"container {id} failed");
        _records[id].FailAppends = false;
    }

    private void Hold(int id)
    {
        lock (_logs)
        {
            _held.Add(id);
        }
    }

    private void Release(int id)
    {
        lock (_logs)
        {
            _held.Remove(id);
            _logs.Where(l => l.Id == id).ToList().ForEach(l => l.Log.Gate.TrySetResult());
        }
    }

    private List<GatedDurableDataLog> LogsOf(int id)
    {
        lock (_logs)
        {
            return _logs.Where(l => l.Id == id).Select(l => l.Log).ToList();
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) =>
        Waiting.UntilAsync(condition, what, Bound, TimeSpan.FromMilliseconds(10));
}
