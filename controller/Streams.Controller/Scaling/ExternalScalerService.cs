using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Server.Grpc;
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
internal sealed class ExternalScalerService(ControllerService controller)
{
    private static readonly TimeSpan PushInterval = TimeSpan.FromSeconds(5);

    public void Register(GrpcServer server)
    {
        server.AddUnary(ExternalScalerApi.IsActive, async (r, c) => new IsActiveResponse { Result = await IsActiveAsync(r, c.CancellationToken) });
        server.AddServerStreaming(ExternalScalerApi.StreamIsActive, async (r, responses, c) =>
        {
            bool? last = null;
            while (!c.CancellationToken.IsCancellationRequested)
            {
                var active = await IsActiveAsync(r, c.CancellationToken);
                if (active != last)
                {
                    await responses.WriteAsync(new IsActiveResponse { Result = active }, c.CancellationToken);
                    last = active;
                }

                await Task.Delay(PushInterval, c.CancellationToken);
            }
        });
        server.AddUnary(ExternalScalerApi.GetMetricSpec, (r, _) =>
        {
            var (scope, stream, perReplica) = Parse(r);
            var reply = new GetMetricSpecResponse();
            reply.MetricSpecs.Add(new MetricSpec { MetricName = MetricName(scope, stream), TargetSize = (long)Math.Ceiling(perReplica), TargetSizeFloat = perReplica });
            return ValueTask.FromResult(reply);
        });
        server.AddUnary(ExternalScalerApi.GetMetrics, async (r, c) =>
        {
            var (scope, stream, _) = Parse(r.ScaledObjectRef ?? throw new RpcException(StatusCode.InvalidArgument, "scaledObjectRef is required."));
            var segments = await controller.GetActiveSegmentsAsync(scope, stream, c.CancellationToken);
            var reply = new GetMetricsResponse();
            reply.MetricValues.Add(new MetricValue { MetricName = MetricName(scope, stream), MetricValue_ = segments.Segments.Count, MetricValueFloat = segments.Segments.Count });
            return reply;
        });
        server.AddServerStreaming(ExternalScalerApi.StreamMetricSpec, (_, _, _) =>
            throw new RpcException(StatusCode.Unimplemented, "StreamMetricSpec is not implemented; KEDA falls back to GetMetricSpec."));
    }

    private async Task<bool> IsActiveAsync(ScaledObjectRef reference, CancellationToken cancellationToken)
    {
        var (scope, stream, _) = Parse(reference);
        var segments = await controller.GetActiveSegmentsAsync(scope, stream, cancellationToken);
        return segments.State == StreamState.Active && segments.Segments.Count > 0;
    }

    internal static string MetricName(string scope, string stream) => $"streams-segments-{scope}-{stream}".ToLowerInvariant().Replace('_', '-').Replace('.', '-');

    private static (string Scope, string Stream, double PerReplica) Parse(ScaledObjectRef reference)
    {
        var metadata = reference.ScalerMetadata;
        if (!metadata.TryGetValue("scope", out var scope) || !metadata.TryGetValue("stream", out var stream))
        {
            throw new RpcException(StatusCode.InvalidArgument, "The ScaledObject's metadata must name the 'scope' and the 'stream'.");
        }

        var perReplica = 1.0;
        if (metadata.TryGetValue("segmentsPerReplica", out var text)
            && (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out perReplica) || perReplica <= 0))
        {
            throw new RpcException(StatusCode.InvalidArgument, $"segmentsPerReplica must be a positive number, not '{text}'.");
        }

        return (scope, stream, perReplica);
    }
}
