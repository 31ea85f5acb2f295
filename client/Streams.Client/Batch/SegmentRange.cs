using System.Text.Json.Serialization;

namespace Streams.Client.Batch;

/// <summary>
/// The bytes [<see cref="StartOffset"/>, <see cref="EndOffset"/>) of one segment: whole events, fixed when the range
/// was listed (<see cref="BatchClient.ListRangesAsync"/>). Plain data: a list of ranges can be serialized (e.g. with
/// System.Text.Json) and handed to workers in other processes, each reading its share with
/// <see cref="BatchClient.ReadRangeAsync{T}"/>.
/// </summary>
/// <param name="Scope">The stream's scope.</param>
/// <param name="Stream">The stream's name.</param>
/// <param name="Segment">Qualified segment name ("scope/stream/number.#epoch.E").</param>
/// <param name="SegmentId">(epoch &lt;&lt; 32) | number, as stream cuts name segments.</param>
/// <param name="KeyStart">Start of the segment's routing-key range (inclusive).</param>
/// <param name="KeyEnd">End of the segment's routing-key range (exclusive).</param>
/// <param name="StartOffset">Offset of the first event to read.</param>
/// <param name="EndOffset">Offset after the last event to read (exclusive).</param>
public sealed record SegmentRange(string Scope, string Stream, string Segment, long SegmentId, double KeyStart, double KeyEnd, long StartOffset, long EndOffset)
{
    /// <summary>The epoch that created the segment.</summary>
    [JsonIgnore]
    public int Epoch => (int)(SegmentId >> 32);

    /// <summary>Bytes in the range (event frames included).</summary>
    [JsonIgnore]
    public long Length => EndOffset - StartOffset;
}
