using Google.Protobuf;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Streams;

/// <summary>
/// What a successor inherits of its predecessors' writer records when a scale seals them (docs/scaling.md,
/// "Epoch transitions").
/// <para>
/// Why by key range: a restarted writer with a stable id and application sequences re-sends (key k, sequence s); the
/// event is already in the stream iff s ≤ the last sequence of the chain of segments that owned k. A merge's successor
/// must therefore not apply one predecessor's last to the other predecessor's keys, and a split's successors keep
/// their parent's last only for the keys they took over.
/// </para>
/// <para>
/// The rule, for successor S and each writer w seen in a predecessor P that overlaps S: S's ranges for w are, per
/// overlapping P, P ∩ S with last = max(P's own last for w, and on sub-ranges covered by P's own inherited ranges for
/// w, that range's last). Adjacent pieces with equal last are coalesced; past <see cref="MaxRangesPerWriter"/> pieces,
/// the closest neighbours are merged keeping the larger last. That is safe for writer-numbered events (one number
/// line per writer) but can over-suppress application sequences on the merged keys.
/// </para>
/// </summary>
internal static class WriterInheritance
{
    /// <summary>Bounds a segment's writer state: a writer through many scales keeps at most this many ranges.</summary>
    public const int MaxRangesPerWriter = 64;

    /// <summary>One predecessor: its key range and its writer records (final, read after it was sealed).</summary>
    public readonly record struct Predecessor(KeyRangeRecord Range, IReadOnlyList<WriterRecord> Writers);

    /// <summary>The records the successor with <paramref name="successor"/>'s range inherits; writers with nothing to inherit are left out.</summary>
    public static IReadOnlyList<WriterRecord> Compute(KeyRangeRecord successor, IReadOnlyList<Predecessor> predecessors)
    {
        var pieces = new Dictionary<ByteString, List<Piece>>();
        foreach (var predecessor in predecessors)
        {
            var start = Math.Max(predecessor.Range.Start, successor.Start);
            var end = Math.Min(predecessor.Range.End, successor.End);
            if (start >= end)
            {
                continue;
            }

            foreach (var writer in predecessor.Writers)
            {
                if (!pieces.TryGetValue(writer.WriterId, out var list))
                {
                    list = [];
                    pieces[writer.WriterId] = list;
                }

                AddPieces(list, start, end, writer);
            }
        }

        var result = new List<WriterRecord>();
        foreach (var (writerId, list) in pieces)
        {
            var coalesced = Bound(Coalesce(list));
            if (coalesced.Count == 0)
            {
                continue;
            }

            var record = new WriterRecord { WriterId = writerId, LastEventNumber = -1 };
            foreach (var piece in coalesced)
            {
                record.Inherited.Add(new InheritedWriterRange { KeyStart = piece.Start, KeyEnd = piece.End, LastEventNumber = piece.Last });
            }

            result.Add(record);
        }

        result.Sort((a, b) => a.WriterId.Span.SequenceCompareTo(b.WriterId.Span));
        return result;
    }

    /// <summary>[start, end) of one predecessor for one writer, cut at its inherited ranges' edges.</summary>
    private static void AddPieces(List<Piece> into, double start, double end, WriterRecord writer)
    {
        var edges = new SortedSet<double> { start, end };
        foreach (var range in writer.Inherited)
        {
            if (range.KeyStart > start && range.KeyStart < end)
            {
                edges.Add(range.KeyStart);
            }

            if (range.KeyEnd > start && range.KeyEnd < end)
            {
                edges.Add(range.KeyEnd);
            }
        }

        double? previous = null;
        foreach (var edge in edges)
        {
            if (previous is { } from)
            {
                var last = writer.LastEventNumber;
                foreach (var range in writer.Inherited)
                {
                    if (range.KeyStart <= from && range.KeyEnd >= edge)
                    {
                        last = Math.Max(last, range.LastEventNumber);
                    }
                }

                if (last >= 0)
                {
                    into.Add(new Piece(from, edge, last));
                }
            }

            previous = edge;
        }
    }

    private static List<Piece> Coalesce(List<Piece> pieces)
    {
        pieces.Sort((a, b) => a.Start.CompareTo(b.Start));
        var result = new List<Piece>(pieces.Count);
        foreach (var piece in pieces)
        {
            if (result.Count > 0 && result[^1].End == piece.Start && result[^1].Last == piece.Last)
            {
                result[^1] = result[^1] with { End = piece.End };
            }
            else
            {
                result.Add(piece);
            }
        }

        return result;
    }

    /// <summary>Merges the neighbours whose lasts are closest until at most <see cref="MaxRangesPerWriter"/> remain.</summary>
    private static List<Piece> Bound(List<Piece> pieces)
    {
        while (pieces.Count > MaxRangesPerWriter)
        {
            var best = 0;
            for (var i = 1; i < pieces.Count - 1; i++)
            {
                if (Math.Abs(pieces[i].Last - pieces[i + 1].Last) < Math.Abs(pieces[best].Last - pieces[best + 1].Last))
                {
                    best = i;
                }
            }

            pieces[best] = new Piece(pieces[best].Start, pieces[best + 1].End, Math.Max(pieces[best].Last, pieces[best + 1].Last));
            pieces.RemoveAt(best + 1);
        }

        return pieces;
    }

    private readonly record struct Piece(double Start, double End, long Last);
}
