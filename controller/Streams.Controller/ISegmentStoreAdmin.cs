using Streams.Contracts.SegmentStore;

namespace Streams.Controller;

/// <summary>
/// The segment operations the controller performs on segment stores. Implementations retry while a container is
/// unavailable (e.g. recovering) and are idempotent: creating an existing segment, sealing a sealed one or
/// deleting a missing one succeeds, because the controller repeats steps after a crash.
/// </summary>
public interface ISegmentStoreAdmin
{
    /// <summary>Creates a segment; a successor starts from <paramref name="seed"/>, its share of its predecessors' load.</summary>
    Task CreateSegmentAsync(string segment, CancellationToken cancellationToken, SegmentLoadSeed? seed = null);

    Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken);

    Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken);

    /// <summary>Makes bytes below <paramref name="offset"/> unreadable (and deletes them from Tier 2).</summary>
    Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken);

    Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken);

    /// <summary>The segment's writer records (final once it is sealed).</summary>
    Task<WriterRecords> GetWriterRecordsAsync(string segment, CancellationToken cancellationToken);

    /// <summary>Sets what the named writers inherited from the segment's predecessors. Idempotent.</summary>
    Task InheritWriterRecordsAsync(string segment, IReadOnlyList<WriterRecord> writers, CancellationToken cancellationToken);

    /// <summary>
    /// Merges transaction segments of <paramref name="target"/> into it, in order, each atomically; idempotent (a source
    /// merged before is skipped). Returns the sources this call copied.
    /// </summary>
    Task<int> MergeSegmentsAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken);

    /// <summary>Appends parts of other segments' transaction segments to <paramref name="target"/>, in order; idempotent per source.</summary>
    Task<int> MergePartsAsync(string target, IReadOnlyList<MergePart> parts, CancellationToken cancellationToken);

    /// <summary>A sealed segment's bytes from its start offset to its end (small segments only: transaction segments).</summary>
    Task<byte[]> ReadSealedAsync(string segment, CancellationToken cancellationToken);
}
