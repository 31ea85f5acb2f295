using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Controller.Streams;

/// <summary>Retention policies, from the wire to the stream record.</summary>
public sealed partial class ControllerService
{
    private static (long? TimeMs, long? SizeBytes, ConsumptionRetentionRecord? Consumption) RetentionOf(StreamConfiguration? config)
    {
        var retention = config?.Retention;
        switch (retention?.KindCase)
        {
            case null or RetentionPolicy.KindOneofCase.None:
                return (null, null, null);
            case RetentionPolicy.KindOneofCase.TimeMs when retention.TimeMs > 0:
                return (retention.TimeMs, null, null);
            case RetentionPolicy.KindOneofCase.SizeBytes when retention.SizeBytes > 0:
                return (null, retention.SizeBytes, null);
            case RetentionPolicy.KindOneofCase.Consumption:
                var c = retention.Consumption;
                if (c.MinTimeMs < 0 || c.MinSizeBytes < 0 || c.MaxTimeMs < 0 || c.MaxSizeBytes < 0)
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument, "Consumption retention bounds are 0 (none) or positive."));
                }

                if ((c.MaxTimeMs > 0 && c.MinTimeMs > c.MaxTimeMs) || (c.MaxSizeBytes > 0 && c.MinSizeBytes > c.MaxSizeBytes))
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument, "A consumption retention minimum is above its maximum."));
                }

                return (null, null, new ConsumptionRetentionRecord(c.MinTimeMs, c.MinSizeBytes, c.MaxTimeMs, c.MaxSizeBytes));
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, "A retention policy needs a positive time or size."));
        }
    }
}
