using Streams.Controller.Streams;

namespace Streams.Controller.Scaling;

/// <summary>
/// One epoch transition the policy asks for: the segments to seal, in key order, and the successors' ranges, in key
/// order. It is made of disjoint runs (a split: one segment and its pieces; a merge: two adjacent segments and their
/// union), each tiled exactly by its ranges, so the ranges tile the sealed segments' union run by run.
/// </summary>
public sealed record ScalePlan(IReadOnlyList<long> SealSegmentIds, IReadOnlyList<KeyRangeRecord> NewRanges, string Reason, int Splits, int Merges);
