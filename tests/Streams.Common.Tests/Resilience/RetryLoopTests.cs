using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;

namespace Streams.Common.Tests.Resilience;

public sealed class RetryLoopTests
{
    private static readonly RetryOptions Fast = new() { FirstDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(160) };

    [Fact]
    public async Task Failures_back_off_exponentially_up_to_the_cap_and_each_is_logged_once()
    {
        var logger = new RecordingLogger();
        var attempts = 0;
        var succeeded = await RetryLoop.UntilSuccessAsync("Test", _ =>
        {
            return ++attempts <= 10 ? throw new InvalidOperationException($"failure {attempts}") : ValueTask.CompletedTask;
        }, logger, Fast, TestContext.Current.CancellationToken);

        Assert.True(succeeded);
        Assert.Equal(11, attempts);
        Assert.Equal(10, logger.Entries.Count);
        Assert.All(logger.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => $"failure {i}"), logger.Entries.Select(e => e.Error!.Message));

        var delays = logger.Entries.Select(e => e.Delay).ToList();
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.Zero, Fast.MaxDelay));
        Assert.True(delays.Distinct().Count() > 1, "The delays carry no jitter.");

        // Exponential growth: the late delays, near the cap, are well above the first ones.
        var early = delays.Take(2).Average(d => d.TotalMilliseconds);
        var late = delays.Skip(6).Average(d => d.TotalMilliseconds);
        Assert.True(late > 2 * early, $"Delays did not grow: {string.Join(", ", delays.Select(d => d.TotalMilliseconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))} ms.");
    }

    [Fact]
    public async Task Cancellation_during_a_back_off_ends_the_loop_at_once_without_throwing()
    {
        var slow = new RetryOptions { FirstDelay = TimeSpan.FromSeconds(30), MaxDelay = TimeSpan.FromSeconds(60) };
        using var cancel = new CancellationTokenSource();
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loop = RetryLoop.RunAsync("Test", _ =>
        {
            failed.TrySetResult();
            throw new IOException("down");
        }, new RecordingLogger(), slow, cancel.Token);

        await failed.Task.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        var started = DateTime.UtcNow;
        await cancel.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        Assert.True(loop.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Until_success_reports_false_when_cancelled_and_a_cancelled_pass_is_not_logged()
    {
        var logger = new RecordingLogger();
        using var cancel = new CancellationTokenSource();
        var succeeded = await RetryLoop.UntilSuccessAsync("Test", async token =>
        {
            await cancel.CancelAsync();
            await Task.Delay(Timeout.Infinite, token);
        }, logger, Fast, cancel.Token);

        Assert.False(succeeded);
        Assert.Empty(logger.Entries);
    }

    [Fact]
    public async Task A_timeout_that_is_not_the_callers_cancellation_is_retried()
    {
        var logger = new RecordingLogger();
        var attempts = 0;
        var succeeded = await RetryLoop.UntilSuccessAsync("Test", _ =>
        {
            return ++attempts == 1 ? throw new TaskCanceledException("call timed out") : ValueTask.CompletedTask;
        }, logger, Fast, TestContext.Current.CancellationToken);

        Assert.True(succeeded);
        Assert.Equal(2, attempts);
        Assert.Single(logger.Entries);
    }

    [Fact]
    public async Task A_pass_that_returns_runs_again_and_a_success_resets_the_back_off()
    {
        var logger = new RecordingLogger();
        using var cancel = new CancellationTokenSource();
        var passes = 0;

        // Five failures, one success, one failure, then stop: the failure after the success waits like a first one.
        var loop = RetryLoop.RunAsync("Test", async _ =>
        {
            var pass = ++passes;
            if (pass == 8)
            {
                await cancel.CancelAsync();
                return;
            }

            if (pass != 6)
            {
                throw new IOException($"pass {pass}");
            }
        }, logger, Fast, cancel.Token);
        await loop.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.Equal(8, passes);
        Assert.Equal(6, logger.Entries.Count);
        Assert.Equal([1, 2, 3, 4, 5, 1], logger.Entries.Select(e => e.Failure));
    }

    private sealed class RecordingLogger : ILogger
    {
        public ConcurrentQueue<Entry> Queue { get; } = new();

        public List<Entry> Entries => [.. Queue];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
            var delay = values.FirstOrDefault(v => v.Key == "Delay").Value is TimeSpan d ? d : TimeSpan.MinValue;
            var failure = values.FirstOrDefault(v => v.Key == "Failure").Value is int f ? f : -1;
            Queue.Enqueue(new Entry(logLevel, exception, delay, failure));
        }
    }

    private sealed record Entry(LogLevel Level, Exception? Error, TimeSpan Delay, int Failure);
}
