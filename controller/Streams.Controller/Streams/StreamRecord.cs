using System.Text.Json.Serialization;

namespace Streams.Controller.Streams;

/// <summary>Lifecycle of a stream record. The transitional states let a restarted controller finish what it began.</summary>
internal enum StreamRecordState
{
    Creating,
    Active,
    Sealing,
    Sealed,
    Deleting,
}

/// <summary>One segment of a stream's epoch and its routing-key range [KeyStart, KeyEnd).</summary>
internal sealed record SegmentRecord(int Number, int Epoch, double KeyStart, double KeyEnd);

/// <summary>A stream as stored in the metadata store (JSON), at /scopes/{scope}/streams/{stream}.</summary>
internal sealed record StreamRecord(
    string Scope,
    string Stream,
    int FixedSegmentCount,
    StreamRecordState State,
    int Epoch,
    IReadOnlyList<SegmentRecord> ActiveSegments,
    long CreatedAtUnixMs,
    long? RetentionTimeMs = null,
    long? RetentionSizeBytes = null)
{
    public bool HasRetention => RetentionTimeMs is not null || RetentionSizeBytes is not null;
}

/// <summary>A scope as stored at /scopes/{scope}.</summary>
internal sealed record ScopeRecord(long CreatedAtUnixMs);

[JsonSerializable(typeof(StreamRecord))]
[JsonSerializable(typeof(ScopeRecord))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class ControllerJsonContext : JsonSerializerContext;
