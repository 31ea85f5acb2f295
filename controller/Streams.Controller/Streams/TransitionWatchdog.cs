using Microsoft.Extensions.Logging;

namespace Streams.Controller.Streams;

/// <summary>
/// On the leading controller: finds scales whose current step is older than <see cref="ControllerOptions.ScaleStepTimeout"/>
/// (their driver crashed, or a segment store stayed away past the call timeout) and drives them on, so no stream stays
/// stuck between epochs. Looks four times per timeout, so a stale step waits at most a quarter more.
/// </summary>
public sealed class TransitionWatchdog(ControllerService controller, TimeSpan stepTimeout, ILogger<TransitionWatchdog> logger)
{
    /// <summary>Runs until cancelled (the end of a leadership).</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var interval = stepTimeout / 4;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, cancellationToken);
                await controller.RedriveStaleTransitionsAsync(DateTimeOffset.UtcNow, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Looking for stalled scales failed ({Error}); retrying in {Interval}.", e.Message, interval);
            }
        }
    }
}
