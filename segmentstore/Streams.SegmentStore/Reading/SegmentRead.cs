using System.Buffers;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Reading;

/// <summary>
/// The answer to a read. For <see cref="ReadStatus.Ok"/>, <see cref="Data"/> points into cached frames that
/// stay alive until the result is disposed: dispose it once the bytes are sent.
/// </summary>
public sealed class SegmentRead : IDisposable
{
    private List<CachedFrame>? _leases;

    public SegmentRead(ReadStatus status, long offset, long segmentLength, long startOffset, bool isSealed)
    {
        Status = status;
        Offset = offset;
        SegmentLength = segmentLength;
        StartOffset = startOffset;
        IsSealed = isSealed;
    }

    public ReadStatus Status { get; }

    /// <summary>Set when the read failed (no such segment, bad offset, container unavailable).</summary>
    public Containers.OperationOutcome? Error { get; private init; }

    public long Offset { get; }

    public long SegmentLength { get; }

    public long StartOffset { get; }

    public bool IsSealed { get; }

    public ReadOnlySequence<byte> Data { get; private set; } = ReadOnlySequence<byte>.Empty;

    /// <summary>
    /// The bytes this result keeps alive until it is disposed: the whole cached frames (or Tier 2 chunks) its data lies
    /// in, which outlive their eviction while leased.
    /// </summary>
    public long HeldBytes { get; private set; }

    public static SegmentRead Failed(Containers.OperationOutcome error) =>
        new(ReadStatus.Unspecified, 0, error.SegmentLength, 0, false) { Error = error };

    internal void SetData(ReadOnlySequence<byte> data, List<CachedFrame> leases)
    {
        Data = data;
        _leases = leases;
        // A frame leased for several of the read's pieces is held once.
        long held = 0;
        for (var i = 0; i < leases.Count; i++)
        {
            if (leases.IndexOf(leases[i]) == i)
            {
                held += leases[i].Length;
            }
        }

        HeldBytes = held;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _leases, null) is { } leases)
        {
            foreach (var lease in leases)
            {
                lease.Release();
            }
        }
    }
}
