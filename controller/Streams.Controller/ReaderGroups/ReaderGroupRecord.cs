using System.Text.Json.Serialization;

namespace Streams.Controller.ReaderGroups;

/// <summary>A stream a group reads.</summary>
public sealed record GroupStreamRecord(string Scope, string Stream);

/// <summary>
/// A reader group as stored in the metadata store (JSON), at /readergroups/{scope}/{group}: its configuration and its
/// coordination state (<see cref="GroupStateRecord"/>).
/// </summary>
public sealed class ReaderGroupRecord
{
    public required string Scope { get; init; }

    public required string Group { get; init; }

    public required List<GroupStreamRecord> Streams { get; init; }

    public int HeartbeatIntervalMs { get; init; }

    public int SessionTimeoutMs { get; init; }

    public long CreatedAtUnixMs { get; init; }

    public GroupStateRecord State { get; init; } = new();
}

[JsonSerializable(typeof(ReaderGroupRecord))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
internal sealed partial class ReaderGroupJsonContext : JsonSerializerContext;
