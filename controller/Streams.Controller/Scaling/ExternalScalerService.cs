using System.Globalization;
using Grpc.Core;
using Streams.Contracts.Controller;
using Streams.Contracts.ExternalScaler;
using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// KEDA's external scaler (externalscaler.ExternalScaler). A ScaledObject names a stream in its metadata
/// (<c>scope</c>, <c>stream</c>, optionally <c>segmentsPerReplica</c>, default 1); the metric is the stream's
/// active segment count, so KEDA runs one reader replica per segment (the most a reader group can use).
/// The scaler reports active while the stream accepts writes; a sealed stream lets KEDA scale to zero.
/// </summary>
internal sealed class ExternalScalerService(ControllerService controller) : ExternalScaler.ExternalScalerBase
{
    private static readonly TimeSpan PushInterval = TimeSpan.FromSeconds(5);

    public override async Task<IsActiveResponse> IsActive(ScaledObjectRef request, ServerCallContext context) =>
        new() { Result = await IsActiveAsync(request, context.CancellationToken) };

    public override async Task StreamIsActive(ScaledObjectRef request, IServerStreamWriter<IsActiveResponse> responseStream, ServerCallContext context)
    {
        bool? last = null;
        while (!context.CancellationToken.IsCancellationRequested)
        {
            var active = await IsActiveAsync(request, context.CancellationToken);
            if (active != last)
            {
                await responseStream.WriteAsync(new IsActiveResponse { Result = active }, context.CancellationToken);
                last = active;
            }

            await Task.Delay(PushInterval, context.CancellationToken);
        }
    }

    public override Task<GetMetricSpecResponse> GetMetricSpec(ScaledObjectRef request, ServerCallContext context)
    {
        var (scope, stream, perReplica) = Parse(request);
        var reply = new GetMetricSpecResponse();
        reply.MetricSpecs.Add(new MetricSpec { MetricName = MetricName(scope, stream), TargetSize = (long)Math.Ceiling(perReplica), TargetSizeFloat = perReplica });
        return Task.FromResult(reply);
    }

    public override async Task<GetMetricsResponse> GetMetrics(GetMetricsRequest request, ServerCallContext context)
    {
        var (scope, stream, _) = Parse(request.ScaledObjectRef ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "scaledObjectRef is required.")));
        var segments = await controller.GetActiveSegmentsAsync(scope, stream, context.CancellationToken);
        var reply = new GetMetricsResponse();
        reply.MetricValues.Add(new MetricValue { MetricName = MetricName(scope, stream), MetricValue_ = segments.Segments.Count, MetricValueFloat = segments.Segments.Count });
        return reply;
    }

    /// <summary>Left out on purpose: KEDA answers UNIMPLEMENTED by falling back to GetMetricSpec, and no KEDA release calls it yet.</summary>
    public override Task StreamMetricSpec(ScaledObjectRef request, IServerStreamWriter<GetMetricSpecResponse> responseStream, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "StreamMetricSpec is not implemented; KEDA falls back to GetMetricSpec."));

    internal static string MetricName(string scope, string stream) => $"streams-segments-{scope}-{stream}".ToLowerInvariant().Replace('_', '-').Replace('.', '-');

    private async Task<bool> IsActiveAsync(ScaledObjectRef reference, CancellationToken cancellationToken)
    {
        var (scope, stream, _) = Parse(reference);
        var segments = await controller.GetActiveSegmentsAsync(scope, stream, cancellationToken);
        return segments.State == StreamState.Active && segments.Segments.Count > 0;
    }

    private static (string Scope, string Stream, double PerReplica) Parse(ScaledObjectRef reference)
    {
        var metadata = reference.ScalerMetadata;
        if (!metadata.TryGetValue("scope", out var scope) || !metadata.TryGetValue("stream", out var stream))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The ScaledObject's metadata must name the 'scope' and the 'stream'."));
        }

        var perReplica = 1.0;
        if (metadata.TryGetValue("segmentsPerReplica", out var text)
            && (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out perReplica) || perReplica <= 0))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"segmentsPerReplica must be a positive number, not '{text}'."));
        }

        return (scope, stream, perReplica);
    }
}
