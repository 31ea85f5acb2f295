using Streams.Contracts.Controller;

namespace Streams.Controller;

/// <summary>Knows which segment store serves a segment (the owner of the segment's container).</summary>
public interface ISegmentLocator
{
    /// <summary>The endpoint serving <paramref name="segment"/>, or null while its container has no owner.</summary>
    SegmentEndpoint? Locate(string segment);
}
