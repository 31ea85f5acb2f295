using Streams.Controller.Streams;

namespace Streams.Controller.Tests.Streams;

public sealed class StreamLocksTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_stream_is_locked_by_one_caller_at_a_time_and_its_lock_is_forgotten_when_nobody_needs_it()
    {
        var locks = new StreamLocks();
        var first = await locks.LockAsync("s/a", Token);
        var second = locks.LockAsync("s/a", Token);
        var other = await locks.LockAsync("s/b", Token);
        await Task.Delay(50, Token);
        Assert.False(second.IsCompleted);
        Assert.Equal(2, locks.Count);

        other.Dispose();
        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5), Token)).Dispose();

        Assert.Equal(0, locks.Count);
    }

    [Fact]
    public async Task A_waiter_that_gives_up_leaves_nothing_behind()
    {
        var locks = new StreamLocks();
        var held = await locks.LockAsync("s/a", Token);
        using var cancel = new CancellationTokenSource();
        var waiting = locks.LockAsync("s/a", cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        held.Dispose();
        Assert.Equal(0, locks.Count);
    }

    [Fact]
    public async Task Many_streams_locked_over_time_keep_no_lock()
    {
        var locks = new StreamLocks();
        await Task.WhenAll(Enumerable.Range(0, 1000).Select(async i =>
        {
            using var held = await locks.LockAsync($"s/{i % 50}", Token);
            await Task.Yield();
        }));

        Assert.Equal(0, locks.Count);
    }
}
