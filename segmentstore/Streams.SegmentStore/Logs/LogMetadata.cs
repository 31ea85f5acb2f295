using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A container log's metadata, at /containers/{id}/log: the chain of ledgers that make up the log, oldest first,
/// the owner epoch (incremented by every new owner) and where the log was truncated. Changed only by compare-and-set,
/// so an old owner can neither extend the chain nor truncate it once a new owner took over.
/// </summary>
internal sealed record LogMetadata(long Epoch, IReadOnlyList<long> Ledgers, long TruncatedLedger, long TruncatedEntry)
{
    public static LogMetadata Empty { get; } = new(0, [], -1, -1);

    public static string PathOf(int containerId) => "/containers/" + containerId.ToString(CultureInfo.InvariantCulture) + "/log";

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, LogJsonContext.Default.LogMetadata);

    public static LogMetadata FromJson(byte[] json) =>
        JsonSerializer.Deserialize(json, LogJsonContext.Default.LogMetadata) ?? throw new InvalidDataException("Empty log metadata.");
}

[JsonSerializable(typeof(LogMetadata))]
internal sealed partial class LogJsonContext : JsonSerializerContext;
