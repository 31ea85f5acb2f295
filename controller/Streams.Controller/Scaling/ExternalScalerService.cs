using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Grpc.Core;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Contracts.ExternalScaler;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// KEDA's external scaler (externalscaler.ExternalScaler). A ScaledObject's trigger names a stream in its metadata
/// (<c>scope</c>, <c>stream</c>, optionally <c>segmentsPerReplica</c>, default 1); the metric is the stream's active
/// segment count with that target, so KEDA runs one reader replica per <c>segmentsPerReplica</c> segments (one per
/// segment is the most a reader group can use). The scaler reports active while the stream accepts writes; a sealed
/// stream has no active segments (the metric is 0, inactive), so KEDA scales its readers to zero.
/// All four calls check the metadata alike: INVALID_ARGUMENT for a missing key, a name the controller would refuse or a
/// bad <c>segmentsPerReplica</c>; NOT_FOUND for a stream that does not exist.
/// <para>
/// The signal is live: GetMetrics and IsActive read the stream's record from the metadata store on every call, and
/// StreamIsActive answers again as soon as this controller records or reads a change of the stream
/// (<see cref="ControllerService.StreamsChanged"/>: a scale's new epoch, a seal), and at least every 5 s for changes
/// made through other controllers.
/// </para>
/// </summary>
public sealed class ExternalScalerService(ControllerService controller) : ExternalScaler.ExternalScalerBase
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

    /// <summary>Longest metric name: an RFC 1123 label.</summary>
    private const int MaxMetricNameLength = 63;

    public override async Task<IsActiveResponse> IsActive(ScaledObjectRef request, ServerCallContext context) =>
        new() { Result = IsActive(await ActiveSegmentsAsync(Parse(request), context.CancellationToken)) };

    public override async Task StreamIsActive(ScaledObjectRef request, IServerStreamWriter<IsActiveResponse> responseStream, ServerCallContext context)
    {
        var trigger = Parse(request);
        bool? last = null;
        while (!context.CancellationToken.IsCancellationRequested)
        {
            var changed = controller.StreamsChanged; // before reading, so a change made while reading is not missed
            var active = IsActive(await ActiveSegmentsAsync(trigger, context.CancellationToken));
            if (active != last)
            {
                await responseStream.WriteAsync(new IsActiveResponse { Result = active }, context.CancellationToken);
                last = active;
            }

            try
            {
                await changed.WaitAsync(PushInterval, context.CancellationToken);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    public override async Task<GetMetricSpecResponse> GetMetricSpec(ScaledObjectRef request, ServerCallContext context)
    {
        var trigger = Parse(request);
        await ActiveSegmentsAsync(trigger, context.CancellationToken);
        var reply = new GetMetricSpecResponse();
        reply.MetricSpecs.Add(new MetricSpec
        {
            MetricName = MetricName(trigger.Scope, trigger.Stream),
            TargetSize = (long)Math.Ceiling(trigger.SegmentsPerReplica),
            TargetSizeFloat = trigger.SegmentsPerReplica,
        });
        return reply;
    }

    public override async Task<GetMetricsResponse> GetMetrics(GetMetricsRequest request, ServerCallContext context)
    {
        var trigger = Parse(request.ScaledObjectRef ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "scaledObjectRef is required.")));
        var segments = (await ActiveSegmentsAsync(trigger, context.CancellationToken)).Segments.Count;
        var reply = new GetMetricsResponse();
        reply.MetricValues.Add(new MetricValue { MetricName = MetricName(trigger.Scope, trigger.Stream), MetricValue_ = segments, MetricValueFloat = segments });
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
    internal static string MetricName(string scope, string stream)
    {
        var name = new StringBuilder(MetricPrefix.Length + scope.Length + 1 + stream.Length).Append(MetricPrefix);
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

    private static bool IsActive(ActiveSegments segments) => segments.State == StreamState.Active && segments.Segments.Count > 0;

    /// <summary>The trigger's stream's active segments; NOT_FOUND if the stream does not exist.</summary>
    private Task<ActiveSegments> ActiveSegmentsAsync(Trigger trigger, CancellationToken cancellationToken) =>
        controller.GetActiveSegmentsAsync(trigger.Scope, trigger.Stream, cancellationToken);

    /// <summary>The trigger's metadata, checked: INVALID_ARGUMENT with what to change if anything is wrong.</summary>
    private static Trigger Parse(ScaledObjectRef reference)
    {
        var metadata = reference.ScalerMetadata;
        if (!metadata.TryGetValue("scope", out var scope) || !metadata.TryGetValue("stream", out var stream))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The ScaledObject's metadata must name the 'scope' and the 'stream'."));
        }

        if ((NameValidator.Validate(scope, "scope") ?? NameValidator.Validate(stream, "stream")) is { } invalid)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The ScaledObject's metadata: {invalid}"));
        }

        var perReplica = 1.0;
        if (metadata.TryGetValue("segmentsPerReplica", out var text)
            && (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out perReplica) || !double.IsFinite(perReplica)
                || perReplica <= 0 || perReplica > MaxSegmentsPerReplica))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"segmentsPerReplica must be a number above 0 and at most {MaxSegmentsPerReplica}, not '{text}'."));
        }

        return new Trigger(scope, stream, perReplica);
    }

    private readonly record struct Trigger(string Scope, string Stream, double SegmentsPerReplica);
}
