using Microsoft.Extensions.Logging;
using Streams.Contracts.Controller;
using Streams.Controller.ReaderGroups;

namespace Streams.Controller.Streams;

/// <summary>
/// Applies retention policies, on the leading controller. Every interval it reads the streams from the metadata store,
/// records each retained stream's tail as a cut with its time and total size when the stream has moved on by a
/// sixteenth of its policy, and truncates the stream at the newest recorded cut the policy allows: older than the
/// retention time, or with at least the retention size written after it. So at least the configured time or size
/// always stays readable, and at most a sixteenth more (plus one interval) is kept.
/// <para>
/// The cuts are stored with the stream's metadata (<see cref="RetentionRecord"/>, compare-and-set), so a new leader
/// carries on with them instead of starting its clock again; a stream that is restarted often still loses its old
/// data on time.
/// </para>
/// <para>
/// Retention that follows consumption records a cut every interval the stream moved on, and truncates at the newest
/// one that every subscribed reader group's latest checkpoint is at or past (<see cref="GroupCuts.IsAtOrBefore"/>) and
/// that the minimums allow; or at the newest one a maximum forces, read or not. Without subscribed groups (or before
/// the groups are loaded after a leader change) only the maximums truncate.
/// </para>
/// </summary>
public sealed class RetentionService(ControllerService controller, StreamMetadataStore metadata, TimeSpan interval, ILogger<RetentionService> logger, IReaderGroupBacklog? groups = null)
{
    /// <summary>Cuts are spaced by this fraction of the policy, so a stream holds about this many at a time.</summary>
    internal const int Steps = 16;

    /// <summary>More cuts than this (truncation failing for a long time) are thinned out, keeping the oldest.</summary>
    internal const int MaxSamples = 4 * Steps;

    /// <summary>The cuts of the streams handled since this controller started leading, with their stored versions.</summary>
    private readonly Dictionary<(string Scope, string Stream), (RetentionRecord Record, long? Version)> _cuts = [];

    /// <summary>Runs until cancelled (the end of a leadership).</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _cuts.Clear(); // another leader may have moved on since this controller last led
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

    /// <summary>One round over every retained stream; a stream that fails is logged and retried next round.</summary>
    public async Task RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var retained = (await controller.ListAllStreamsAsync(cancellationToken))
            .Where(r => r.HasRetention && r.State == StreamRecordState.Active)
            .ToDictionary(r => (r.Scope, r.Stream));
        foreach (var key in _cuts.Keys.Where(k => !retained.ContainsKey(k)).ToList())
        {
            _cuts.Remove(key);
        }

        foreach (var record in retained.Values)
        {
            try
            {
                await ApplyAsync(record, now, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _cuts.Remove((record.Scope, record.Stream)); // read again from the store next round
                logger.LogWarning("Applying retention to {Scope}/{Stream} failed ({Error}); retrying in {Interval}.", record.Scope, record.Stream, e.Message, interval);
            }
        }
    }

    private async Task ApplyAsync(StreamRecord record, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var key = (record.Scope, record.Stream);
        if (!_cuts.TryGetValue(key, out var stored))
        {
            var found = await metadata.GetRetentionAsync(record.Scope, record.Stream, cancellationToken);
            stored = found is { } f
                ? (f.Record.StreamCreatedAtUnixMs == record.CreatedAtUnixMs ? f.Record : f.Record with { StreamCreatedAtUnixMs = record.CreatedAtUnixMs, Samples = [] }, f.Version)
                : (new RetentionRecord(record.CreatedAtUnixMs, []), null);
        }

        var cut = await controller.GetStreamCutAsync(record.Scope, record.Stream, cancellationToken);
        var total = cut.Positions.Values.Sum() + await controller.EarlierEpochsBytesAsync(record, cancellationToken);
        var samples = stored.Record.Samples.ToList();
        var changed = false;
        if (ShouldRecord(samples.Count > 0 ? samples[^1] : null, now, total, record.RetentionTimeMs, record.RetentionSizeBytes, interval))
        {
            samples.Add(new RetentionSample(now.ToUnixTimeMilliseconds(), total, cut.Positions.ToDictionary()));
            samples = Thin(samples);
            changed = true;
        }

        var chosen = record.Consumption is { } consumption
            ? await ChooseConsumedAsync(record, consumption, samples, now, total, cancellationToken)
            : Choose(samples, now, total, record.RetentionTimeMs, record.RetentionSizeBytes);
        if (chosen >= 0)
        {
            var at = new StreamCut { Scope = record.Scope, Stream = record.Stream };
            foreach (var (segment, offset) in samples[chosen].Positions)
            {
                at.Positions[segment] = offset;
            }

            await controller.TruncateStreamAsync(at, cancellationToken); // idempotent: a new leader may repeat it
            samples.RemoveRange(0, chosen + 1);
            changed = true;
        }

        if (!changed)
        {
            _cuts[key] = stored;
            return;
        }

        var next = stored.Record with { Samples = samples };
        var version = await metadata.SaveRetentionAsync(record.Scope, record.Stream, next, stored.Version, cancellationToken);
        if (version is null)
        {
            _cuts.Remove(key); // another controller wrote them: read them again next round
            logger.LogInformation("Retention cuts of {Scope}/{Stream} were changed by another controller; reading them again.", record.Scope, record.Stream);
            return;
        }

        _cuts[key] = (next, version);
    }

    /// <summary>
    /// The index of the newest sample retention that follows consumption allows truncating at, or -1: the newest a
    /// maximum forces, or, if newer, the newest every subscribed group has checkpointed past and the minimums allow.
    /// </summary>
    private async Task<int> ChooseConsumedAsync(StreamRecord record, ConsumptionRetentionRecord bounds, IReadOnlyList<RetentionSample> samples, DateTimeOffset now, long total, CancellationToken cancellationToken)
    {
        var forced = -1;
        for (var i = samples.Count - 1; i >= 0 && forced < 0; i--)
        {
            if ((bounds.MaxTimeMs > 0 && now.ToUnixTimeMilliseconds() - samples[i].TimeUnixMs >= bounds.MaxTimeMs)
                || (bounds.MaxSizeBytes > 0 && total - samples[i].Total >= bounds.MaxSizeBytes))
            {
                forced = i;
            }
        }

        var cuts = groups is null ? null : await groups.GetSubscriberCutsAsync(record.Scope, record.Stream, cancellationToken);
        if (cuts is not { Count: > 0 })
        {
            return forced;
        }

        var ranges = GroupCuts.Ranges(await controller.ListSegmentsAsync(record.Scope, record.Stream, cancellationToken));
        for (var i = samples.Count - 1; i > forced; i--)
        {
            var sample = samples[i];
            var kept = (bounds.MinTimeMs == 0 || now.ToUnixTimeMilliseconds() - sample.TimeUnixMs >= bounds.MinTimeMs)
                && (bounds.MinSizeBytes == 0 || total - sample.Total >= bounds.MinSizeBytes);
            if (kept && cuts.All(c => GroupCuts.IsAtOrBefore(sample.Positions, c.Positions, ranges)))
            {
                return i;
            }
        }

        return forced;
    }

    /// <summary>
    /// Whether the tail is worth a new cut: the first one, or the stream has moved on (new bytes) and by a sixteenth of
    /// the policy since the last cut (in time, or in bytes); without a time or size (consumption), an interval later.
    /// </summary>
    internal static bool ShouldRecord(RetentionSample? last, DateTimeOffset now, long total, long? timeMs, long? sizeBytes, TimeSpan interval)
    {
        if (last is null)
        {
            return true;
        }

        if (total == last.Total)
        {
            return false; // the same cut, only newer: the older one already allows truncating earlier
        }

        return timeMs is { } t
            ? now.ToUnixTimeMilliseconds() - last.TimeUnixMs >= Math.Max(t / Steps, (long)interval.TotalMilliseconds)
            : sizeBytes is { } s
                ? total - last.Total >= Math.Max(s / Steps, 1)
                : now.ToUnixTimeMilliseconds() - last.TimeUnixMs >= (long)interval.TotalMilliseconds;
    }

    /// <summary>Above <see cref="MaxSamples"/>, every second cut goes, keeping the oldest and the newest.</summary>
    internal static List<RetentionSample> Thin(List<RetentionSample> samples) =>
        samples.Count <= MaxSamples ? samples : [.. samples.Where((_, i) => i % 2 == 0 || i == samples.Count - 1)];

    /// <summary>The index of the newest sample the policy allows truncating at, or -1.</summary>
    internal static int Choose(IReadOnlyList<RetentionSample> samples, DateTimeOffset now, long total, long? timeMs, long? sizeBytes)
    {
        for (var i = samples.Count - 1; i >= 0; i--)
        {
            var sample = samples[i];
            var allowed = timeMs is { } t ? now.ToUnixTimeMilliseconds() - sample.TimeUnixMs >= t
                : sizeBytes is { } s && total - sample.Total >= s;
            if (allowed)
            {
                return i;
            }
        }

        return -1;
    }
}
