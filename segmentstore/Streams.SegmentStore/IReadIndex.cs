using System.Buffers;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore;

/// <summary>
/// A container's read index: serves durable segment bytes from the frame cache, from Tier 2 chunks (through the chunk
/// cache, one fetch shared by readers that miss on the same chunk at once), or from the durable log.
/// <para>
/// Contract: it serves only durable bytes (the metadata's durable view) and never a frame or chunk that fails its
/// checksum (it throws <see cref="DataCorruptionException"/>). It never changes segment state. Reading a chunk never
/// touches the frame cache, so a reader catching up does not evict the tail. It holds no lock of its own while it calls
/// the metadata.
/// </para>
/// </summary>
internal interface IReadIndex : IDisposable
{
    /// <summary>
    /// Reads durable bytes of a segment. At the tail, waits up to <paramref name="wait"/> for new data. The result may
    /// hold cached frames: dispose it once its data is sent.
    /// </summary>
    ValueTask<SegmentRead> ReadAsync(string name, long offset, int maxBytes, TimeSpan wait, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads up to <paramref name="count"/> bytes that are in the log (not from Tier 2), for the storage writer; the
    /// caller passes the segment's <paramref name="length"/> and <paramref name="start"/> as it saw them.
    /// </summary>
    ValueTask<SegmentRead> ReadFromLogAsync(SegmentMetadata segment, long offset, int count, long length, long start, CancellationToken cancellationToken = default);

    /// <summary>A frame with appends is durable at <paramref name="address"/>: cache it (the index takes ownership of <paramref name="frame"/>).</summary>
    void OnFrameDurable(LogAddress address, IMemoryOwner<byte> frame, int length);

    /// <summary>The log was truncated at <paramref name="address"/>: forget the frames and index entries before it.</summary>
    void OnLogTruncated(LogAddress address);
}
