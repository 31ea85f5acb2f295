using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>A group's checkpoints (asking every reader for its commits, then its positions as cuts), its backlog, and its description.</summary>
public sealed partial class GroupCoordinator
{
    /// <summary>The checkpoint being taken, if any.</summary>
    public string? CheckpointInProgress => _checkpoint?.Name;

    /// <summary>True once every reader asked for checkpoint <paramref name="name"/> acknowledged it (or left).</summary>
    public bool CheckpointAcknowledged(string name) => _checkpoint is { } c && c.Name == name && c.Awaiting.Count == 0;

    /// <summary>
    /// Starts checkpoint <paramref name="name"/>: every current reader is asked for it (again every two heartbeat
    /// intervals until it answers) and answers with its commits. One at a time.
    /// </summary>
    public void StartCheckpoint(string name, DateTimeOffset now)
    {
        if (_checkpoint is not null)
        {
            throw new InvalidOperationException($"Checkpoint {_checkpoint.Name} is being taken.");
        }

        _checkpoint = new PendingCheckpoint(name, [.. _sessions.Keys]) { LastSent = now };
        foreach (var session in _sessions.Values)
        {
            session.Outbox.Enqueue(new CoordinatorMessage { Checkpoint = new CheckpointRequest { Name = name } });
        }
    }

    /// <summary>Ends (or abandons) the checkpoint being taken.</summary>
    public void EndCheckpoint() => _checkpoint = null;

    /// <summary>
    /// The group's position in every segment it still has to read (or has not looked past yet): its committed offset,
    /// by segment id, for the segments of <paramref name="scope"/>/<paramref name="stream"/>. With every reader's
    /// commits in, a cut the group can be reset to: what is before it was processed, what is after it was not.
    /// </summary>
    public Dictionary<long, long> Positions(string scope, string stream)
    {
        var positions = State.Segments.Where(s => s.Scope == scope && s.Stream == stream).ToDictionary(s => s.SegmentId, s => s.CommittedOffset);
        foreach (var finished in State.Finished.Where(f => f.Scope == scope && f.Stream == stream))
        {
            positions.TryAdd(finished.SegmentId, finished.Offset);
        }

        return positions;
    }

    /// <summary>The group's backlog: over every segment not completed, its length (or end offset) minus the committed offset.</summary>
    public GroupBacklog Backlog()
    {
        long unread = 0;
        var backlogged = 0;
        foreach (var segment in State.Segments)
        {
            var bytes = UnreadBytes(segment);
            unread += bytes;
            backlogged += bytes > 0 ? 1 : 0;
        }

        return new GroupBacklog(unread, backlogged);
    }

    /// <summary>Members and segments as readergroups.proto describes them (config and checkpoints are the caller's).</summary>
    public void Describe(ReaderGroupInfo info)
    {
        info.Generation = State.Generation;
        foreach (var session in _sessions.Values.OrderBy(s => s.Member.ReaderId, StringComparer.Ordinal))
        {
            var owned = State.Segments.Where(s => s.State == GroupSegmentState.Assigned && s.Owner == session.Member.ReaderId).ToList();
            var member = new GroupMember
            {
                ReaderId = session.Member.ReaderId, SessionEpoch = session.Member.SessionEpoch,
                LastHeartbeatUnixMs = session.LastSeen.ToUnixTimeMilliseconds(), UnreadBytes = owned.Sum(UnreadBytes),
            };
            member.SegmentIds.AddRange(owned.Select(s => s.SegmentId));
            info.Members.Add(member);
        }

        foreach (var segment in State.Segments)
        {
            info.Segments.Add(new GroupSegment
            {
                Scope = segment.Scope, Stream = segment.Stream, SegmentId = segment.SegmentId, Segment = segment.Name,
                State = segment.State switch
                {
                    GroupSegmentState.Future => SegmentReadState.Future,
                    GroupSegmentState.Unassigned => SegmentReadState.Unassigned,
                    GroupSegmentState.Assigned => SegmentReadState.Assigned,
                    _ => SegmentReadState.Completed,
                },
                Owner = segment.Owner ?? "", OwnerEpoch = segment.OwnerEpoch, CommittedOffset = segment.CommittedOffset,
                EndOffset = segment.EndOffset, Length = _lengths.GetValueOrDefault(segment.SegmentId), UnreadBytes = UnreadBytes(segment),
                KeyStart = segment.KeyStart, KeyEnd = segment.KeyEnd,
            });
        }

        var backlog = Backlog();
        info.UnreadBytes = backlog.UnreadBytes;
        info.BackloggedSegments = backlog.BackloggedSegments;
        info.Ended = Ended;
    }

    /// <summary>Asks the readers that have not answered the checkpoint again, every two heartbeat intervals (a reply may be lost).</summary>
    private void RepeatCheckpointRequest(DateTimeOffset now)
    {
        if (_checkpoint is not { } checkpoint || now - checkpoint.LastSent < TimeSpan.FromMilliseconds(2 * _heartbeatIntervalMs))
        {
            return;
        }

        checkpoint.LastSent = now;
        foreach (var readerId in checkpoint.Awaiting)
        {
            _sessions[readerId].Outbox.Enqueue(new CoordinatorMessage { Checkpoint = new CheckpointRequest { Name = checkpoint.Name } });
        }
    }
}

/// <summary>A checkpoint being taken: the readers that have not acknowledged it yet.</summary>
internal sealed class PendingCheckpoint(string name, HashSet<string> awaiting)
{
    public string Name { get; } = name;

    public HashSet<string> Awaiting { get; } = awaiting;

    public DateTimeOffset LastSent { get; set; }
}
