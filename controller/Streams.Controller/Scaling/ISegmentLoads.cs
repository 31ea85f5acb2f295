using Streams.Contracts.Controller;

namespace Streams.Controller.Scaling;

/// <summary>
/// What the leading controller last heard of each segment's load (from the segment stores' reports): the scale
/// workflow seeds successors from it, and <c>describe</c> shows the hot keys it found.
/// </summary>
public interface ISegmentLoads
{
    /// <summary>The latest report for a segment (qualified name), or null if none arrived yet.</summary>
    SegmentLoad? Latest(string segment);

    /// <summary>The stream's key ranges whose load sits in one routing-key bucket.</summary>
    IReadOnlyList<HotKey> HotKeys(string scope, string stream);
}
