using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Grpc.Core;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Contracts.ExternalScaler;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// KEDA's external scaler (externalscaler.ExternalScaler). A ScaledObject's trigger picks one of two metrics in its
/// metadata:
/// <list type="bullet">
/// <item><c>metric: segments</c> (the default), with <c>scope</c>, <c>stream</c> and optionally <c>segmentsPerReplica</c>
/// (default 1): the stream's active segment count, so KEDA runs one reader replica per <c>segmentsPerReplica</c> segments
/// (one per segment is the most a reader group can use). Active while the stream accepts writes; a sealed stream has no
/// active segments (0, inactive), so KEDA scales its readers to zero.</item>
/// <item><c>metric: unreadBytes</c>, with <c>scope</c>, <c>readerGroup</c>, optionally <c>targetBytesPerReplica</c> (default
/// 64 MiB) and <c>activationUnreadBytes</c> (default 0): the group's unread bytes, capped at its backlogged segments times
/// the target (as KEDA's Kafka scaler caps lag at partitions × threshold), so KEDA never runs more replicas than there
/// are segments with something to read. Active only while the backlog exceeds the activation threshold, so functions
/// scale to zero when the group has caught up.</item>
/// </list>
/// All four calls check the metadata alike: INVALID_ARGUMENT for a missing key, a name the controller would refuse or a
/// bad number; NOT_FOUND for a stream or group that does not exist.
/// <para>
/// The signal is live: GetMetrics and IsActive read the stream's record (or the group's backlog) on every call, and
/// StreamIsActive answers again as soon as this controller records or reads a change of the stream
/// (<see cref="ControllerService.StreamsChanged"/>: a scale's new epoch, a seal) or of the group's backlog
/// (<see cref="IReaderGroupBacklog.BacklogChanged"/>), and at least every 5 s.
/// </para>
/// </summary>
public sealed class ExternalScalerService(ControllerService controller, IReaderGroupBacklog? groups = null) : ExternalScaler.ExternalScalerBase
{
    /// <summary>How often StreamIsActive looks again without a change notification: changes made by another controller.</summary>
    private static readonly TimeSpan PushInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The largest <c>segmentsPerReplica</c>: as many segments as a stream can be configured with
    /// (Controller:MaxSegmentsPerStream at most), so larger targets mean nothing more, and KEDA's target in milli-units
    /// stays far from overflowing.
    /// </summary>
    private const int MaxSegmentsPerReplica = 65536;

    private const string MetricPrefix = "streams-segments-";

    private const string UnreadMetricPrefix = "streams-unread-";

    /// <summary>The default <c>targetBytesPerReplica</c>: 64 MiB of backlog per reader replica.</summary>
    private const long DefaultTargetBytesPerReplica = 64L * 1024 * 1024;

    /// <summary>The largest byte figure in the metadata (1 PiB): far from overflowing the capped metric.</summary>
    private const long MaxBytes = 1L << 50;

    /// <summary>Longest metric name: an RFC 1123 label.</summary>
    private const int MaxMetricNameLength = 63;

    public override async Task<IsActiveResponse> IsActive(ScaledObjectRef request, ServerCallContext context) =>
        new() { Result = (await MeasureAsync(Parse(request), context.CancellationToken)).Active };

    public override async Task StreamIsActive(ScaledObjectRef request, IServerStreamWriter<IsActiveResponse> responseStream, ServerCallContext context)
    {
        var trigger = Parse(request);
        var backlogChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnBacklog(string scope, string group)
        {
            if (scope == trigger.Scope && group == trigger.Group)
            {
                Volatile.Read(ref backlogChanged).TrySetResult();
            }
        }

        if (groups is not null && trigger.Group is not null)
        {
            groups.BacklogChanged += OnBacklog;
        }

        try
        {
            bool? last = null;
            while (!context.CancellationToken.IsCancellationRequested)
            {
                // Both taken before reading, so a change made while reading is not missed.
                var changed = controller.StreamsChanged;
                _ = Interlocked.Exchange(ref backlogChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                var active = (await MeasureAsync(trigger, context.CancellationToken)).Active;
                if (active != last)
                {
                    await responseStream.WriteAsync(new IsActiveResponse { Result = active }, context.CancellationToken);
                    last = active;
                }

                try
                {
                    await Task.WhenAny(changed, Volatile.Read(ref backlogChanged).Task).WaitAsync(PushInterval, context.CancellationToken);
                }
                catch (TimeoutException)
                {
                }
            }
        }
        finally
        {
            if (groups is not null)
            {
                groups.BacklogChanged -= OnBacklog;
            }
        }
    }

    public override async Task<GetMetricSpecResponse> GetMetricSpec(ScaledObjectRef request, ServerCallContext context)
    {
        var trigger = Parse(request);
        await MeasureAsync(trigger, context.CancellationToken);
        var reply = new GetMetricSpecResponse();
        reply.MetricSpecs.Add(trigger.Group is null
            ? new MetricSpec { MetricName = MetricName(trigger.Scope, trigger.Stream!), TargetSize = (long)Math.Ceiling(trigger.SegmentsPerReplica), TargetSizeFloat = trigger.SegmentsPerReplica }
            : new MetricSpec { MetricName = UnreadMetricName(trigger.Scope, trigger.Group), TargetSize = trigger.TargetBytes, TargetSizeFloat = trigger.TargetBytes });
        return reply;
    }

    public override async Task<GetMetricsResponse> GetMetrics(GetMetricsRequest request, ServerCallContext context)
    {
        var trigger = Parse(request.ScaledObjectRef ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "scaledObjectRef is required.")));
        var value = (await MeasureAsync(trigger, context.CancellationToken)).Value;
        var reply = new GetMetricsResponse();
        reply.MetricValues.Add(new MetricValue
        {
            MetricName = trigger.Group is null ? MetricName(trigger.Scope, trigger.Stream!) : UnreadMetricName(trigger.Scope, trigger.Group),
            MetricValue_ = value, MetricValueFloat = value,
        });
        return reply;
    }

    /// <summary>Left out on purpose: KEDA answers UNIMPLEMENTED by falling back to GetMetricSpec, and no KEDA release calls it yet.</summary>
    public override Task StreamMetricSpec(ScaledObjectRef request, IServerStreamWriter<GetMetricSpecResponse> responseStream, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "StreamMetricSpec is not implemented; KEDA falls back to GetMetricSpec."));

    /// <summary>
    /// The metric's name: "streams-segments-{scope}-{stream}" lowercased, with every character but a-z, 0-9 and '-'
    /// ('_' and '.') turned into '-' and no '-' at the end, so it is a lowercase RFC 1123 label as the HPA needs (it asks
    /// for external metrics by lowercased name). A name over 63 characters keeps its first 46 and ends with '-' and a
    /// hash of the exact scope and stream. Streams whose names differ only in case, '_' or '.' share a metric name;
    /// that is harmless, as KEDA asks for a metric with its trigger's own metadata and prefixes each trigger's
    /// metric with the trigger's index.
    /// </summary>
    internal static string MetricName(string scope, string stream) => Label(MetricPrefix, scope, stream);

    /// <summary>The unreadBytes metric's name: "streams-unread-{scope}-{group}", made a label as <see cref="MetricName"/> is.</summary>
    internal static string UnreadMetricName(string scope, string group) => Label(UnreadMetricPrefix, scope, group);

    private static string Label(string prefix, string scope, string stream)
    {
        var name = new StringBuilder(prefix.Length + scope.Length + 1 + stream.Length).Append(prefix);
        AppendLabel(name, scope);
        name.Append('-');
        AppendLabel(name, stream);
        var text = name.ToString().TrimEnd('-');
        if (text.Length <= MaxMetricNameLength)
        {
            return text;
        }

        var hash = XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(scope + "/" + stream)).ToString("x16", CultureInfo.InvariantCulture);
        return text[..(MaxMetricNameLength - 1 - hash.Length)].TrimEnd('-') + "-" + hash;
    }

    private static void AppendLabel(StringBuilder name, string part)
    {
        foreach (var c in part)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
        }
    }

    /// <summary>
    /// The trigger's metric and whether it is active: the stream's active segments (NOT_FOUND if the stream does not
    /// exist), or the group's capped backlog (NOT_FOUND if the group does not exist or this controller does not lead).
    /// </summary>
    private async Task<(long Value, bool Active)> MeasureAsync(Trigger trigger, CancellationToken cancellationToken)
    {
        if (trigger.Group is null)
        {
            var segments = await controller.GetActiveSegmentsAsync(trigger.Scope, trigger.Stream!, cancellationToken);
            return (segments.Segments.Count, segments.State == StreamState.Active && segments.Segments.Count > 0);
        }

        if (groups is null)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "This controller does not serve reader groups: metric unreadBytes is not available."));
        }

        var backlog = await groups.GetBacklogAsync(trigger.Scope, trigger.Group, cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Reader group {trigger.Scope}/{trigger.Group} does not exist."));
        var capped = Math.Min(backlog.UnreadBytes, backlog.BackloggedSegments * trigger.TargetBytes);
        return (capped, backlog.UnreadBytes > trigger.ActivationBytes);
    }

    /// <summary>The trigger's metadata, checked: INVALID_ARGUMENT with what to change if anything is wrong.</summary>
    private static Trigger Parse(ScaledObjectRef reference)
    {
        var metadata = reference.ScalerMetadata;
        var metric = metadata.TryGetValue("metric", out var named) ? named : "segments";
        if (metric == "unreadBytes")
        {
            if (!metadata.TryGetValue("scope", out var groupScope) || !metadata.TryGetValue("readerGroup", out var group))
            {
                throw Invalid("metric unreadBytes needs the 'scope' and the 'readerGroup' in the ScaledObject's metadata.");
            }

            if ((NameValidator.Validate(groupScope, "scope") ?? NameValidator.Validate(group, "reader group")) is { } badName)
            {
                throw Invalid($"The ScaledObject's metadata: {badName}");
            }

            var target = Bytes(metadata, "targetBytesPerReplica", DefaultTargetBytesPerReplica, minimum: 1);
            var activation = Bytes(metadata, "activationUnreadBytes", 0, minimum: 0);
            return new Trigger(groupScope, null, 1, group, target, activation);
        }

        if (metric != "segments")
        {
            throw Invalid($"metric must be 'segments' or 'unreadBytes', not '{metric}'.");
        }

        if (!metadata.TryGetValue("scope", out var scope) || !metadata.TryGetValue("stream", out var stream))
        {
            throw Invalid("The ScaledObject's metadata must name the 'scope' and the 'stream'.");
        }

        if ((NameValidator.Validate(scope, "scope") ?? NameValidator.Validate(stream, "stream")) is { } invalid)
        {
            throw Invalid($"The ScaledObject's metadata: {invalid}");
        }

        var perReplica = 1.0;
        if (metadata.TryGetValue("segmentsPerReplica", out var text)
            && (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out perReplica) || !double.IsFinite(perReplica)
                || perReplica <= 0 || perReplica > MaxSegmentsPerReplica))
        {
            throw Invalid($"segmentsPerReplica must be a number above 0 and at most {MaxSegmentsPerReplica}, not '{text}'.");
        }

        return new Trigger(scope, stream, perReplica, null, 0, 0);
    }

    /// <summary>A byte count from the metadata: a whole number from <paramref name="minimum"/> to 1 PiB.</summary>
    private static long Bytes(IDictionary<string, string> metadata, string key, long fallback, long minimum)
    {
        if (!metadata.TryGetValue(key, out var text))
        {
            return fallback;
        }

        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes) || bytes < minimum || bytes > MaxBytes)
        {
            throw Invalid($"{key} must be a whole number of bytes from {minimum} to {MaxBytes}, not '{text}'.");
        }

        return bytes;
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>A trigger: a stream's segments (<paramref name="Group"/> null) or a group's unread bytes.</summary>
    private readonly record struct Trigger(string Scope, string? Stream, double SegmentsPerReplica, string? Group, long TargetBytes, long ActivationBytes);
}
