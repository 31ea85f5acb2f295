using Streams.SegmentStore.Containers;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>
/// The container's start and disposal (SegmentContainer.cs, lifecycle): disposal may come while it recovers, and a
/// disposed container never serves, whatever the recovery does afterwards.
/// </summary>
public sealed class SegmentContainerLifecycleTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Disposed_while_recovering_it_never_starts_serving_and_its_log_is_closed_after_the_recovery()
    {
        // The recovery is on the wire and goes on after the cancellation: disposal must wait for it, then keep it dead.
        var log = new GatedDurableDataLog { IgnoreCancellation = true };
        await SeedAsync(log.Inner);
        var container = Create(log);
        var start = container.StartAsync(TestContext.Current.CancellationToken);
        await log.Opened.WaitAsync(Bound, TestContext.Current.CancellationToken);

        var dispose = container.DisposeAsync().AsTask();
        await Task.Delay(50, TestContext.Current.CancellationToken);
        Assert.False(dispose.IsCompleted, "Disposal closed the parts while the recovery was still reading the log.");
        Assert.False(log.IsDisposed);

        log.Gate.SetResult();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(Bound));
        await dispose.WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.True(log.IsDisposed);
        Assert.Equal(ContainerState.Stopped, container.State);
        var outcome = await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("late"), TestContext.Current.CancellationToken).WaitAsync(Bound);
        Assert.Equal(OutcomeStatus.ContainerUnavailable, outcome.Status);
    }

    [Fact]
    public async Task Disposal_cancels_a_recovery_that_waits()
    {
        var log = new GatedDurableDataLog();
        var container = Create(log);
        var start = container.StartAsync(TestContext.Current.CancellationToken);
        await log.Opened.WaitAsync(Bound, TestContext.Current.CancellationToken);

        await container.DisposeAsync().AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(Bound));
        Assert.Equal(ContainerState.Stopped, container.State);
    }

    [Fact]
    public async Task Disposal_is_idempotent_and_concurrent_calls_all_wait_for_it()
    {
        var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () => await container.DisposeAsync()))).WaitAsync(Bound, TestContext.Current.CancellationToken);
        await container.DisposeAsync();

        Assert.Equal(ContainerState.Stopped, container.State);
    }

    [Fact]
    public async Task A_container_disposed_before_it_starts_refuses_to_start()
    {
        var container = Create(new InMemoryDurableDataLog());
        await container.DisposeAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => container.StartAsync(TestContext.Current.CancellationToken));
        Assert.Equal(ContainerState.Stopped, container.State);
    }

    /// <summary>A log with a segment and a few events, so recovery has frames to replay.</summary>
    private static async Task SeedAsync(InMemoryDurableDataLog log)
    {
        await using var container = await StartWithSegmentAsync(log);
        Assert.True((await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("a"), TestContext.Current.CancellationToken)).IsSuccess);
    }

    [Fact]
    public async Task A_stop_finishes_within_its_timeout_when_the_log_never_answers_and_pending_appends_are_told_to_retry()
    {
        // A woken store's log: its frames wait for bookies that fenced it, its close for a metadata session that is gone.
        var log = new SilentDurableDataLog();
        var container = await StartWithSegmentAsync(log, options: new ContainerOptions { StopTimeout = TimeSpan.FromMilliseconds(500) });
        log.Silence();
        var append = container.AppendAsync(Segment, WriterA, 1, 1, null, Events("never durable"), TestContext.Current.CancellationToken);
        await Task.Delay(100, TestContext.Current.CancellationToken); // the frame is handed to the log
        Assert.False(append.IsCompleted);

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await container.DisposeAsync().AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken);

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"The stop took {stopwatch.Elapsed.TotalSeconds:0.0} s.");
        Assert.True(container.Disposed.IsCompleted);
        Assert.Equal(ContainerState.Stopped, container.State);
        Assert.Equal(OutcomeStatus.ContainerUnavailable, (await append.WaitAsync(Bound, TestContext.Current.CancellationToken)).Status);
    }
}
