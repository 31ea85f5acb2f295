using System.Text.Json.Serialization;
using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>
/// A stream a group reads, from its start cut (null: its head) to its end cut (null: unbounded); a cut maps segment
/// ids to offsets.
/// </summary>
public sealed record GroupStreamRecord(string Scope, string Stream, Dictionary<long, long>? Start = null, Dictionary<long, long>? End = null);

/// <summary>A checkpoint of a group: a cut per stream of the committed positions once every reader acknowledged it.</summary>
public sealed record GroupCheckpointRecord(string Name, long CreatedAtUnixMs, List<GroupCutRecord> Cuts);

/// <summary>One stream's positions in a checkpoint (segment id to offset).</summary>
public sealed record GroupCutRecord(string Scope, string Stream, Dictionary<long, long> Positions);

/// <summary>
/// A reader group as stored in the metadata store (JSON), at /readergroups/{scope}/{group}: its configuration and its
/// coordination state (<see cref="GroupStateRecord"/>).
/// </summary>
public sealed class ReaderGroupRecord
{
    public required string Scope { get; init; }

    public required string Group { get; init; }

    public required List<GroupStreamRecord> Streams { get; set; }

    public int HeartbeatIntervalMs { get; set; }

    public int SessionTimeoutMs { get; set; }

    /// <summary>Automatic checkpoints this often; 0: none.</summary>
    public int CheckpointIntervalMs { get; set; }

    /// <summary>Whether the group's latest checkpoint holds back the retention of its streams.</summary>
    public GroupRetention Retention { get; set; }

    /// <summary>Completed checkpoints, oldest first (the latest <see cref="MaxCheckpoints"/>).</summary>
    public List<GroupCheckpointRecord> Checkpoints { get; init; } = [];

    public const int MaxCheckpoints = 10;

    public long CreatedAtUnixMs { get; init; }

    public GroupStateRecord State { get; init; } = new();
}

[JsonSerializable(typeof(ReaderGroupRecord))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class ReaderGroupJsonContext : JsonSerializerContext;
