using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Controller.Streams;

/// <summary>Scaling policies between the wire (<see cref="ScalingPolicy"/>) and the stream record, checked on the way in.</summary>
internal static class ScalingPolicies
{
    /// <summary>A rate policy's maximum when the request leaves it at 0 (as Pulsar's; Pravega has none).</summary>
    public const int DefaultMaxSegments = 64;

    /// <summary>The policy a request asks for (none: one fixed segment), or INVALID_ARGUMENT saying which field to fix.</summary>
    public static ScalingPolicyRecord FromContract(ScalingPolicy? policy, int maxSegmentsPerStream)
    {
        switch (policy?.KindCase)
        {
            case null or ScalingPolicy.KindOneofCase.None:
                return new ScalingPolicyRecord(ScalingKind.Fixed, 1);
            case ScalingPolicy.KindOneofCase.Fixed:
                var count = policy.Fixed.SegmentCount;
                if (count < 1 || count > maxSegmentsPerStream)
                {
                    throw Invalid($"A stream needs between 1 and {maxSegmentsPerStream} segments (asked for {count}).");
                }

                return new ScalingPolicyRecord(ScalingKind.Fixed, count);
            default:
                var kind = policy.KindCase == ScalingPolicy.KindOneofCase.EventsPerSecond ? ScalingKind.EventsPerSecond : ScalingKind.KBytesPerSecond;
                var rate = kind == ScalingKind.EventsPerSecond ? policy.EventsPerSecond : policy.KbytesPerSecond;
                var what = kind == ScalingKind.EventsPerSecond ? "events per second" : "KiB per second";
                var factor = rate.ScaleFactor == 0 ? 2 : rate.ScaleFactor;
                var min = rate.MinSegments == 0 ? 1 : rate.MinSegments;
                var max = rate.MaxSegments == 0 ? Math.Min(DefaultMaxSegments, maxSegmentsPerStream) : rate.MaxSegments;
                if (rate.TargetRate < 1)
                {
                    throw Invalid($"A rate policy needs a target of at least 1 {what} per segment (target_rate is {rate.TargetRate}).");
                }

                if (factor < 2)
                {
                    throw Invalid($"A rate policy's scale factor is the most segments one split makes: at least 2 (scale_factor is {rate.ScaleFactor}).");
                }

                if (min < 1 || max < min || max > maxSegmentsPerStream)
                {
                    throw Invalid($"A rate policy needs 1 <= min_segments <= max_segments <= {maxSegmentsPerStream} (Controller:MaxSegmentsPerStream); it has min {min}, max {max}.");
                }

                return new ScalingPolicyRecord(kind, rate.TargetRate, factor, min, max);
        }
    }

    public static ScalingPolicy ToContract(ScalingPolicyRecord policy)
    {
        if (policy.Kind == ScalingKind.Fixed)
        {
            return new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = policy.Target } };
        }

        var rate = new RateScaling { TargetRate = policy.Target, ScaleFactor = policy.ScaleFactor, MinSegments = policy.MinSegments, MaxSegments = policy.MaxSegments };
        return policy.Kind == ScalingKind.EventsPerSecond ? new ScalingPolicy { EventsPerSecond = rate } : new ScalingPolicy { KbytesPerSecond = rate };
    }

    /// <summary>The segment count a stream is created with under the policy.</summary>
    public static int InitialSegments(ScalingPolicyRecord policy) => policy.Kind == ScalingKind.Fixed ? policy.Target : policy.MinSegments;

    /// <summary>The bounds any scale of the stream must respect.</summary>
    public static (int Min, int Max) Bounds(ScalingPolicyRecord policy, int maxSegmentsPerStream) =>
        policy.Kind == ScalingKind.Fixed ? (1, maxSegmentsPerStream) : (policy.MinSegments, Math.Min(policy.MaxSegments, maxSegmentsPerStream));

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
