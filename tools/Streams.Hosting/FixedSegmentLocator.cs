using Streams.Contracts.Controller;
using Streams.Controller;

namespace Streams.Hosting;

/// <summary>Standalone: this process serves every segment.</summary>
internal sealed class FixedSegmentLocator(ServerSettings settings) : ISegmentLocator
{
    public SegmentEndpoint? Locate(string segment) => new()
    {
        Segment = segment,
        Host = settings.Advertised,
        DataPort = settings.DataPort,
        GrpcUri = settings.GrpcUri,
    };
}
