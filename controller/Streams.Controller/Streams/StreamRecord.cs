using System.Text.Json.Serialization;

namespace Streams.Controller.Streams;

/// <summary>Lifecycle of a stream record. The transitional states let a restarted controller finish what it began.</summary>
public enum StreamRecordState
{
    Creating,
    Active,
    Sealing,
    Sealed,
    Deleting,
}

/// <summary>
/// One segment of a stream's epoch and its routing-key range [KeyStart, KeyEnd). <see cref="Predecessors"/> are the ids
/// of the segments it replaced (none for the first epoch's); <see cref="SealedEpoch"/> the epoch that replaced it.
/// </summary>
public sealed record SegmentRecord(int Number, int Epoch, double KeyStart, double KeyEnd, IReadOnlyList<long>? Predecessors = null, int? SealedEpoch = null);

/// <summary>How a stream's segment count is decided.</summary>
public enum ScalingKind
{
    Fixed,
    EventsPerSecond,
    KBytesPerSecond,
}

/// <summary>
/// A stream's scaling policy. For <see cref="ScalingKind.Fixed"/>, <see cref="Target"/> is the segment count and the
/// rest is unused; otherwise <see cref="Target"/> is the rate per segment (events/s or KiB/s).
/// </summary>
public sealed record ScalingPolicyRecord(ScalingKind Kind, int Target, int ScaleFactor = 2, int MinSegments = 1, int MaxSegments = 64);

/// <summary>A routing-key range [Start, End).</summary>
public readonly record struct KeyRangeRecord(double Start, double End);

/// <summary>
/// An epoch transition under way, stored in the stream record so a new leading controller finishes it.
/// <see cref="Step"/> is the last step completed ("" after recording, then "created", "linked", "sealed", "inherited").
/// <see cref="Successors"/> are the successor records with their predecessors, stored by the "linked" step (not yet
/// active: the last step moves them into <see cref="StreamRecord.ActiveSegments"/>).
/// </summary>
public sealed record EpochTransitionRecord(
    int FromEpoch,
    IReadOnlyList<long> SealSegmentIds,
    IReadOnlyList<KeyRangeRecord> NewRanges,
    string Step,
    long StartedAtUnixMs,
    long StepAtUnixMs,
    string Reason,
    IReadOnlyList<SegmentRecord>? Successors = null);

/// <summary>One completed scale: the epoch it made, when, what it sealed and created, and why.</summary>
public sealed record ScaleHistoryRecord(int Epoch, long TimeUnixMs, IReadOnlyList<long> Sealed, IReadOnlyList<long> Created, string Reason);

/// <summary>
/// A stream as stored in the metadata store (JSON), at /scopes/{scope}/streams/{stream}. <see cref="ActiveSegments"/>
/// are the segments of the current <see cref="Epoch"/>; <see cref="EarlierSegments"/> those of earlier epochs, which
/// a scale sealed and replaced (none until streams scale: a scale must move the segments it replaces there). Together
/// they are every segment the stream has; a segment in neither never belonged to it.
/// </summary>
public sealed record StreamRecord(
    string Scope,
    string Stream,
    int FixedSegmentCount,
    StreamRecordState State,
    int Epoch,
    IReadOnlyList<SegmentRecord> ActiveSegments,
    long CreatedAtUnixMs,
    long? RetentionTimeMs = null,
    long? RetentionSizeBytes = null,
    IReadOnlyList<SegmentRecord>? EarlierSegments = null,
    ScalingPolicyRecord? Scaling = null,
    EpochTransitionRecord? Transition = null,
    IReadOnlyList<ScaleHistoryRecord>? History = null,
    int NextSegmentNumber = 0,
    ConsumptionRetentionRecord? Consumption = null)
{
    /// <summary>The scaling policy; records written before policies existed are fixed at their segment count.</summary>
    public ScalingPolicyRecord Policy => Scaling ?? new ScalingPolicyRecord(ScalingKind.Fixed, FixedSegmentCount);

    public bool HasRetention => RetentionTimeMs is not null || RetentionSizeBytes is not null || Consumption is not null;

    /// <summary>
    /// Whether the stream takes appends: from its creation until sealing begins. A stream that is not open has no active
    /// segments; its <see cref="ActiveSegments"/> still hold its data and are read to their ends.
    /// </summary>
    public bool IsOpen => State is StreamRecordState.Creating or StreamRecordState.Active;

    /// <summary>Every segment the stream has: the current epoch's and the earlier epochs'.</summary>
    public IEnumerable<SegmentRecord> AllSegments => EarlierSegments is { } earlier ? earlier.Concat(ActiveSegments) : ActiveSegments;

    /// <summary>The stream's segment with this number and epoch, or null if it never had one.</summary>
    public SegmentRecord? FindSegment(int number, int epoch) =>
        AllSegments.FirstOrDefault(s => s.Number == number && s.Epoch == epoch);
}

/// <summary>
/// Retention that follows consumption (controller.proto ConsumptionRetention): data below the lowest checkpoint of the
/// subscribed reader groups goes, except what the minimums keep; data beyond a maximum goes even if unread. 0: no bound.
/// </summary>
public sealed record ConsumptionRetentionRecord(long MinTimeMs, long MinSizeBytes, long MaxTimeMs, long MaxSizeBytes);

/// <summary>A scope as stored at /scopes/{scope}.</summary>
internal sealed record ScopeRecord(long CreatedAtUnixMs);

/// <summary>A stream's tail at one moment: when, how many bytes the stream had taken in all, and each segment's length.</summary>
public sealed record RetentionSample(long TimeUnixMs, long Total, IReadOnlyDictionary<long, long> Positions);

/// <summary>
/// The cuts a retention policy may truncate at, oldest first, as stored at /retention/{scope}/{stream}, so a new
/// leading controller carries on where the last one stopped. <see cref="StreamCreatedAtUnixMs"/> ties them to one
/// incarnation of the stream: a stream deleted and created again under the same name never inherits old cuts.
/// </summary>
public sealed record RetentionRecord(long StreamCreatedAtUnixMs, IReadOnlyList<RetentionSample> Samples);

[JsonSerializable(typeof(StreamRecord))]
[JsonSerializable(typeof(ScopeRecord))]
[JsonSerializable(typeof(RetentionRecord))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class ControllerJsonContext : JsonSerializerContext;
