using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Load;

/// <summary>
/// A container's load timer: one per container, not per segment, so thousands of segments cost one timer and, per
/// tick, a few microseconds each. Each tick folds every live segment's counts into its averages (idle segments decay
/// too) and hands the unsealed ones to the <see cref="LoadReporter"/>, if the store reports load. Sealed and deleted
/// segments are no longer measured.
/// </summary>
internal sealed class ContainerLoad : IAsyncDisposable
{
    private readonly IContainerMetadata _metadata;
    private readonly SegmentLoadOptions _options;
    private readonly double[] _windows;
    private readonly LoadReporter? _reporter;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<SegmentMetadata> _segments = [];
    private readonly object _tickLock = new();
    private Task _loop = Task.CompletedTask;
    private long _nowMs;

    public ContainerLoad(int containerId, IContainerMetadata metadata, SegmentLoadOptions options, ISegmentLoadSink? sink, string store, ILogger logger)
    {
        ContainerId = containerId;
        _metadata = metadata;
        _options = options;
        _windows = options.Windows();
        _logger = logger;
        _reporter = sink is null ? null : new LoadReporter(sink, store, options.ReportIntervalMs, logger);
    }

    public int ContainerId { get; }

    /// <summary>Starts ticking every Scaling:TickMs.</summary>
    public void Start() => _loop = Task.Run(RunAsync, CancellationToken.None);

    /// <summary>
    /// One tick, <paramref name="elapsedMs"/> after the previous one. Returns the report it started, if any (tests
    /// drive ticks by hand through this).
    /// </summary>
    public Task? Tick(long elapsedMs)
    {
        lock (_tickLock)
        {
            _nowMs += elapsedMs;
            _metadata.ForEachSegment(_segments, static (segment, list) => list.Add(segment));
            var live = new List<(string, LoadState)>(_segments.Count);
            foreach (var segment in _segments)
            {
                if (!segment.IsDurable || segment.IsDeleted || segment.IsSealed)
                {
                    continue;
                }

                segment.Load.Tick(elapsedMs, _windows);
                live.Add((segment.Name, segment.Load.Capture()));
            }

            _segments.Clear();
            return _reporter?.OnTick(live, _nowMs);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(_options.TickMs));
        var last = Stopwatch.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var now = Stopwatch.GetTimestamp();
                var elapsed = (long)Stopwatch.GetElapsedTime(last, now).TotalMilliseconds;
                last = now;
                try
                {
                    _ = Tick(elapsed); // the report runs on its own; the next tick skips while it is in flight
                }
                catch (Exception e)
                {
                    _logger.LogWarning(e, "Container {Container}: measuring segment load failed; trying again at the next tick.", ContainerId);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
