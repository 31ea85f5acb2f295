using Microsoft.Extensions.Logging;
using Streams.Contracts.Controller;

namespace Streams.Controller.Streams;

/// <summary>
/// Applies retention policies. Every interval it records each retained stream's tail as a stream cut with its time
/// and total size, and truncates the stream at the newest recorded cut that the policy allows: older than the
/// retention time, or with at least the retention size written after it. So at least the configured time or size
/// always stays readable, and truncation moves in steps of the interval.
/// <para>
/// The cuts live in the leading controller's memory: after a leader change, retention resumes once the new leader
/// has recorded cuts old (or far behind) enough — data is kept longer, never dropped early.
/// </para>
/// </summary>
internal sealed class RetentionService(ControllerService controller, TimeSpan interval, ILogger<RetentionService> logger)
{
    /// <summary>Cuts kept per stream; the oldest go first (a 30 s interval covers about 3.5 days).</summary>
    private const int MaxSamples = 10_000;

    private readonly Dictionary<(string Scope, string Stream), List<Sample>> _samples = [];

    /// <summary>Runs until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, cancellationToken);
                await RunOnceAsync(DateTimeOffset.UtcNow, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Applying retention failed ({Error}); retrying in {Interval}.", e.Message, interval);
            }
        }
    }

    /// <summary>One round: record a cut of every retained stream and truncate where the policy allows.</summary>
    public async Task RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var retained = controller.KnownStreams.Where(r => r.HasRetention && r.State == StreamRecordState.Active).ToList();
        foreach (var key in _samples.Keys.Where(k => !retained.Any(r => (r.Scope, r.Stream) == k)).ToList())
        {
            _samples.Remove(key);
        }

        foreach (var record in retained)
        {
            var cut = await controller.GetStreamCutAsync(record.Scope, record.Stream, cancellationToken);
            var total = cut.Positions.Values.Sum();
            if (!_samples.TryGetValue((record.Scope, record.Stream), out var samples))
            {
                _samples[(record.Scope, record.Stream)] = samples = [];
            }

            samples.Add(new Sample(now, total, cut));
            if (samples.Count > MaxSamples)
            {
                samples.RemoveAt(0);
            }

            var chosen = Choose(samples, now, total, record.RetentionTimeMs, record.RetentionSizeBytes);
            if (chosen >= 0)
            {
                await controller.TruncateStreamAsync(samples[chosen].Cut, cancellationToken);
                samples.RemoveRange(0, chosen + 1);
            }
        }
    }

    /// <summary>The index of the newest sample the policy allows truncating at, or -1.</summary>
    internal static int Choose(IReadOnlyList<Sample> samples, DateTimeOffset now, long total, long? timeMs, long? sizeBytes)
    {
        for (var i = samples.Count - 1; i >= 0; i--)
        {
            var sample = samples[i];
            var allowed = timeMs is { } t ? now - sample.Time >= TimeSpan.FromMilliseconds(t)
                : sizeBytes is { } s && total - sample.Total >= s;
            if (allowed)
            {
                return i;
            }
        }

        return -1;
    }

    internal sealed record Sample(DateTimeOffset Time, long Total, StreamCut Cut);
}
