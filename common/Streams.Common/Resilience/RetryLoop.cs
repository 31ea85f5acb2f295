using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Streams.Common.Resilience;

/// <summary>
/// The one retry loop of the cluster's background work (leader election, registrations, container ownership, the
/// controller's cluster view, container restarts): run a pass, and when it throws, log the failure once and run it
/// again after an exponential, jittered back-off (Polly's retry strategy). Cancellation of the caller's token ends the
/// loop quietly, also in the middle of a back-off; an <see cref="OperationCanceledException"/> that does not come
/// from that token (a timed-out call) is a failure like any other.
/// </summary>
public static class RetryLoop
{
    /// <summary>
    /// Runs <paramref name="pass"/> over and over until <paramref name="cancellationToken"/> is cancelled: again at
    /// once after a pass returns (a pass waits for its own reason to run again, e.g. a watch), after a back-off when
    /// it throws. Returns when cancelled; never throws.
    /// </summary>
    public static async Task RunAsync(
        string operation, Func<CancellationToken, ValueTask> pass, ILogger logger, RetryOptions? options, CancellationToken cancellationToken)
    {
        var pipeline = Build(operation, logger, options ?? RetryOptions.Default);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await pipeline.ExecuteAsync(pass, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it returns once, backing off after each failure. Returns true when it
    /// succeeded, false when <paramref name="cancellationToken"/> was cancelled first; never throws.
    /// </summary>
    public static async Task<bool> UntilSuccessAsync(
        string operation, Func<CancellationToken, ValueTask> attempt, ILogger logger, RetryOptions? options, CancellationToken cancellationToken)
    {
        try
        {
            await Build(operation, logger, options ?? RetryOptions.Default).ExecuteAsync(attempt, cancellationToken);
            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static ResiliencePipeline Build(string operation, ILogger logger, RetryOptions options)
    {
        options.Validate();
        return new ResiliencePipelineBuilder { TimeProvider = options.TimeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.FirstDelay,
                MaxDelay = options.MaxDelay,
                ShouldHandle = static args => ValueTask.FromResult(
                    args.Outcome.Exception is { } e && !(e is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested)),
                OnRetry = args =>
                {
                    var error = args.Outcome.Exception!;
                    logger.LogWarning(error, "{Operation} failed ({Error}); retrying in {Delay} (failure {Failure}).",
                        operation, error.Message, args.RetryDelay, args.AttemptNumber + 1);
                    return default;
                },
            })
            .Build();
    }
}
