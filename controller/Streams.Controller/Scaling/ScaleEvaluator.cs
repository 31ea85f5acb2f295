using Microsoft.Extensions.Logging;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// Runs the scaling policy on the leading controller: every Scaling:EvaluateIntervalMs it reads every stream, asks
/// <see cref="ScalePlanner"/> about each open stream with a rate policy, and hands a plan to the scale workflow
/// (<see cref="ControllerService.ScaleStreamAsync"/>). A failure is logged and the stream is evaluated again next
/// interval, from the state then (the workflow is durable, and the planner leaves a stream with a scale under way
/// alone); one stream's failure never stops the others.
/// </summary>
public sealed class ScaleEvaluator
{
    private readonly ControllerService _controller;
    private readonly SegmentLoadTracker _loads;
    private readonly ScalingSettings _settings;
    private readonly ControllerMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Func<StreamRecord, ScalePlan, CancellationToken, Task> _scale;

    public ScaleEvaluator(ControllerService controller, SegmentLoadTracker loads, ScalingSettings settings, ControllerMetrics? metrics, ILogger<ScaleEvaluator> logger)
        : this(controller, loads, settings, metrics, logger, TimeProvider.System,
            (record, plan, cancellationToken) => controller.ScaleStreamAsync(record.Scope, record.Stream, plan.SealSegmentIds, plan.NewRanges, plan.Reason, cancellationToken))
    {
    }

    /// <summary>With another clock and another way to apply a plan (tests).</summary>
    internal ScaleEvaluator(ControllerService controller, SegmentLoadTracker loads, ScalingSettings settings, ControllerMetrics? metrics, ILogger logger, TimeProvider time, Func<StreamRecord, ScalePlan, CancellationToken, Task> scale)
    {
        settings.Validate();
        (_controller, _loads, _settings, _metrics, _logger, _time, _scale) = (controller, loads, settings, metrics, logger, time, scale);
    }

    /// <summary>Evaluates every interval until cancelled (the end of a leadership); starts from no reports.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _loads.Reset();
        var interval = TimeSpan.FromMilliseconds(_settings.EvaluateIntervalMs);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, _time, cancellationToken);
                await RunOnceAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                _logger.LogWarning("Evaluating the scaling policies failed ({Error}); retrying in {Interval}.", e.Message, interval);
            }
        }
    }

    /// <summary>One round over every stream; returns the number of plans the workflow accepted. Nothing while not leading.</summary>
    public async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        if (!_loads.IsLeading)
        {
            return 0;
        }

        var records = await _controller.ListAllStreamsAsync(cancellationToken);
        _loads.Forget(records);
        var applied = 0;
        foreach (var record in records)
        {
            if (!record.IsOpen || record.Policy.Kind == ScalingKind.Fixed)
            {
                continue;
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var decision = ScalePlanner.Decide(record, _loads.FreshLoads(record, now, _settings.FreshnessMs), now, _settings);
            _loads.SetHotKeys(record.Scope, record.Stream, decision.HotKeys);
            if (decision.Plan is not { } plan)
            {
                continue;
            }

            try
            {
                _logger.LogInformation("Scaling {Scope}/{Stream} at epoch {Epoch}: {Reason}.", record.Scope, record.Stream, record.Epoch, plan.Reason);
                await _scale(record, plan, cancellationToken);
                _metrics?.RecordScale(record.Scope, record.Stream, plan.Splits, plan.Merges);
                applied++;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _logger.LogWarning("Scaling {Scope}/{Stream} failed ({Error}); it is evaluated again in {Interval} ms.", record.Scope, record.Stream, e.Message, _settings.EvaluateIntervalMs);
            }
        }

        return applied;
    }
}
