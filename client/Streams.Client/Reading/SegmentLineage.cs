using Streams.Contracts.Controller;

namespace Streams.Client.Reading;

/// <summary>
/// Which segments of a stream a reader has finished and which it may start: a segment starts once every one of its
/// predecessors is read to its end (per-key order across epochs), and at most once. Thread-safe.
/// </summary>
internal sealed class SegmentLineage
{
    private readonly object _lock = new();
    private readonly Dictionary<long, Entry> _known = [];
    private readonly HashSet<long> _done = [];
    private readonly HashSet<long> _started = [];

    /// <summary>
    /// Starts from the stream's segments (<paramref name="segments"/>, every epoch). Done from the outset: every
    /// ancestor of a segment named in <paramref name="resumeAt"/>, and with <paramref name="atTail"/> every sealed
    /// segment (only new events are wanted).
    /// </summary>
    public SegmentLineage(IEnumerable<SegmentDescriptor> segments, IEnumerable<string> resumeAt, bool atTail)
    {
        foreach (var descriptor in segments)
        {
            _known[descriptor.Segment.SegmentId] = new Entry(descriptor.Segment.SegmentId, descriptor.Segment.Segment, descriptor.HasSealedEpoch, [.. descriptor.PredecessorIds]);
        }

        var named = new HashSet<string>(resumeAt, StringComparer.Ordinal);
        var pending = new Stack<long>();
        foreach (var entry in _known.Values)
        {
            if (named.Contains(entry.Name))
            {
                entry.Predecessors.ForEach(pending.Push);
            }

            if (atTail && entry.Sealed)
            {
                _done.Add(entry.Id);
            }
        }

        // Bounded by the number of segments: each is marked done once.
        while (pending.TryPop(out var id))
        {
            if (_done.Add(id) && _known.TryGetValue(id, out var ancestor))
            {
                ancestor.Predecessors.ForEach(pending.Push);
            }
        }
    }

    /// <summary>The segments to read first: not done, with every predecessor done (or unknown: truncated from the history).</summary>
    public List<Entry> Ready()
    {
        lock (_lock)
        {
            var ready = new List<Entry>();
            foreach (var entry in _known.Values.OrderBy(e => e.Id))
            {
                if (!_done.Contains(entry.Id) && entry.Predecessors.All(p => _done.Contains(p) || !_known.ContainsKey(p)) && _started.Add(entry.Id))
                {
                    ready.Add(entry);
                }
            }

            return ready;
        }
    }

    /// <summary>
    /// Records that segment <paramref name="id"/> is read to its end; returns those of its <paramref name="successors"/>
    /// that may start now (all their predecessors done, not started before).
    /// </summary>
    public List<Entry> Completed(long id, IEnumerable<SuccessorSegment> successors)
    {
        lock (_lock)
        {
            _done.Add(id);
            var ready = new List<Entry>();
            foreach (var successor in successors)
            {
                var entry = new Entry(successor.Segment.SegmentId, successor.Segment.Segment, false, [.. successor.PredecessorIds]);
                _known.TryAdd(entry.Id, entry);
                if (entry.Predecessors.All(_done.Contains) && !_done.Contains(entry.Id) && _started.Add(entry.Id))
                {
                    ready.Add(entry);
                }
            }

            return ready;
        }
    }

    /// <summary>A segment: its id, qualified name, whether it was sealed when listed, and its predecessors' ids.</summary>
    public sealed record Entry(long Id, string Name, bool Sealed, List<long> Predecessors);
}
