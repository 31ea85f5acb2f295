using System.Diagnostics;

namespace Streams.Testing;

/// <summary>
/// Waits for something a test started in the background to become true: polled, bounded in time, and failing with
/// a <see cref="TimeoutException"/> that says what never happened.
/// </summary>
public static class Waiting
{
    /// <summary>How often a condition is looked at unless the caller says otherwise.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Waits until <paramref name="condition"/> holds; throws if it does not within <paramref name="timeout"/>, naming <paramref name="what"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan timeout, TimeSpan? interval = null, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), () => TimedOut(what, timeout), timeout, interval, cancellationToken);

    /// <summary>Waits until <paramref name="condition"/> holds; throws with the message <paramref name="failure"/> makes then if it does not within <paramref name="timeout"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, Func<string> failure, TimeSpan timeout, TimeSpan? interval = null, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), failure, timeout, interval, cancellationToken);

    /// <summary>Waits until the asynchronous <paramref name="condition"/> holds; throws if it does not within <paramref name="timeout"/>, naming <paramref name="what"/>.</summary>
    public static Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout, TimeSpan? interval = null, CancellationToken cancellationToken = default) =>
        UntilAsync(condition, () => TimedOut(what, timeout), timeout, interval, cancellationToken);

    /// <summary>Waits until the asynchronous <paramref name="condition"/> holds; throws with the message <paramref name="failure"/> makes then if it does not within <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, Func<string> failure, TimeSpan timeout, TimeSpan? interval = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed >= timeout)
            {
                throw new TimeoutException(failure());
            }

            await Task.Delay(interval ?? DefaultInterval, cancellationToken);
        }
    }

    private static string TimedOut(string what, TimeSpan timeout) => $"Timed out after {timeout.TotalSeconds:0.###} s waiting until {what}.";
}
