using Microsoft.Extensions.Logging;

namespace Streams.Common.Resilience;

/// <summary>A <see cref="RetryLoop"/> run in the background from <see cref="Start"/> until <see cref="StopAsync"/>.</summary>
public sealed class BackgroundRetryLoop
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    /// <summary>Starts running <paramref name="pass"/> as <see cref="RetryLoop.RunAsync"/> does, with the default retry options.</summary>
    public void Start(string operation, Func<CancellationToken, ValueTask> pass, ILogger logger) =>
        _loop = Task.Run(() => RetryLoop.RunAsync(operation, pass, logger, null, _stop.Token), CancellationToken.None);

    /// <summary>Cancels the loop and waits for its current pass to end. Call once.</summary>
    public async ValueTask StopAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
    }
}
