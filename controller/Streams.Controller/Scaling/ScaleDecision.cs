using Streams.Contracts.Controller;

namespace Streams.Controller.Scaling;

/// <summary>What one evaluation of a stream found: the plan (null: nothing to do) and the hot keys it would not split.</summary>
public sealed record ScaleDecision(ScalePlan? Plan, IReadOnlyList<HotKey> HotKeys)
{
    public static readonly ScaleDecision None = new(null, []);
}
