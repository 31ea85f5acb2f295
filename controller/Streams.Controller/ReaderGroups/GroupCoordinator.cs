using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>
/// The coordination of one reader group (the leading controller holds one per group): who reads which segment, from
/// where, under which owner epoch. Pure: no I/O and no clock of its own; the caller passes the time, persists
/// <see cref="State"/> when <see cref="Dirty"/> says so, sends each session its messages (<see cref="Drain"/>), and
/// answers <see cref="SuccessorLookups"/> from the stream records.
/// <para>
/// The rules. A segment has one owner at a time, fenced by its owner epoch; it goes to another reader only after its
/// owner released it (after a revoke, or leaving) or its session expired (no message for the session timeout), from the
/// committed offset. A successor is handed out as soon as every predecessor the group reads is completed, that is
/// committed to its end: per-key order across scales without a global checkpoint. A reader's share is the readable
/// segments divided among the readers, rounded up. Unassigned segments go, largest backlog first, to the reader with
/// the smallest backlog among those below their share; a reader above its share is revoked one segment at a time, at
/// most once per <see cref="CoordinatorRules.RevokeInterval"/>. Nothing is assigned during the join window.
/// </para>
/// </summary>
public sealed partial class GroupCoordinator
{
    private readonly TimeSpan _sessionTimeout;
    private readonly int _heartbeatIntervalMs;
    private readonly CoordinatorRules _rules;
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<long, long> _lengths = [];
    /// <summary>The answer to a late message of an earlier assignment held again by the same reader: none.</summary>
    private static readonly CoordinatorMessage Ignored = new();

    private DateTimeOffset _assignAfter;
    private bool _endAnnounced;
    private PendingCheckpoint? _checkpoint;

    /// <summary>
    /// Takes over <paramref name="state"/> (new, or read back by a new leading controller). Every member in it gets a
    /// full session timeout from <paramref name="now"/> to show up, instead of being expired at once.
    /// </summary>
    public GroupCoordinator(GroupStateRecord state, TimeSpan heartbeatInterval, TimeSpan sessionTimeout, CoordinatorRules rules, DateTimeOffset now)
    {
        State = state;
        _heartbeatIntervalMs = (int)heartbeatInterval.TotalMilliseconds;
        _sessionTimeout = sessionTimeout;
        _rules = rules;
        _assignAfter = now + rules.JoinWindow;
        foreach (var member in state.Members)
        {
            var session = _sessions[member.ReaderId] = new Session(member, now);

            // The last leader may have stored an assignment whose reply never arrived: repeated unless mentioned.
            foreach (var segment in state.Segments.Where(s => s.State == GroupSegmentState.Assigned && s.Owner == member.ReaderId))
            {
                session.Unacknowledged[segment.SegmentId] = now;
            }
        }
    }

    public GroupStateRecord State { get; }

    /// <summary>What <see cref="State"/> needs: nothing, its commits written (batched), or written now.</summary>
    public GroupDirt Dirty { get; private set; }

    /// <summary>True once every segment is completed and nothing follows (a bounded group reached its end, or its sealed streams were read).</summary>
    public bool Ended => State.Segments.Count == 0;

    /// <summary>Completed segments whose successors the caller has to look up and pass to <see cref="AddSuccessors"/>.</summary>
    public IEnumerable<GroupSegmentRecord> SuccessorLookups =>
        State.Segments.Where(s => s is { State: GroupSegmentState.Completed, SuccessorsKnown: false });

    /// <summary>Clears <see cref="Dirty"/> once the caller has written the state.</summary>
    public void MarkWritten() => Dirty = GroupDirt.Clean;

    /// <summary>The segment's length as last seen (for the backlog); the caller refreshes it.</summary>
    public void SetLength(long segmentId, long length) => _lengths[segmentId] = length;

    /// <summary>
    /// One message of reader <paramref name="readerId"/>. Returns what answers it at once (Joined, or Fenced for a stale
    /// session or assignment); everything else the reader gets goes to its session's queue (<see cref="Drain"/>).
    /// </summary>
    public IReadOnlyList<CoordinatorMessage> Handle(string readerId, ReaderMessage message, DateTimeOffset now)
    {
        if (message.KindCase == ReaderMessage.KindOneofCase.Join)
        {
            return [Join(readerId, now)];
        }

        var epoch = SessionEpochOf(message);
        if (!_sessions.TryGetValue(readerId, out var session) || session.Member.SessionEpoch != epoch)
        {
            return [Fence(0, $"Session {epoch} of reader {readerId} is not current: join again.")];
        }

        session.LastSeen = now;
        Acknowledge(session, message);
        switch (message.KindCase)
        {
            case ReaderMessage.KindOneofCase.Heartbeat:
                return [];
            case ReaderMessage.KindOneofCase.Commit:
                if (Owned(readerId, message.Commit.OwnerEpoch, message.Commit.Position, out var committed) is { } stale)
                {
                    return ReferenceEquals(stale, Ignored) ? [] : [stale];
                }

                Commit(committed!, message.Commit.Position.Offset);
                return [];
            case ReaderMessage.KindOneofCase.Release:
                if (Owned(readerId, message.Release.OwnerEpoch, message.Release.Position, out var released) is { } staleRelease)
                {
                    return ReferenceEquals(staleRelease, Ignored) ? [] : [staleRelease];
                }

                Commit(released!, message.Release.Position.Offset);
                Unassign(released!);
                return [];
            case ReaderMessage.KindOneofCase.Completed:
                if (Owned(readerId, message.Completed.OwnerEpoch, message.Completed.Position, out var completed) is { } staleCompletion)
                {
                    return ReferenceEquals(staleCompletion, Ignored) ? [] : [staleCompletion];
                }

                Complete(completed!, message.Completed.Position.Offset);
                return [];
            case ReaderMessage.KindOneofCase.Leave:
                foreach (var position in message.Leave.Positions)
                {
                    if (Find(position.SegmentId) is { State: GroupSegmentState.Assigned } segment && segment.Owner == readerId)
                    {
                        Commit(segment, position.Offset);
                    }
                }

                Remove(session);
                return [];
            case ReaderMessage.KindOneofCase.CheckpointAck:
                if (_checkpoint is { } checkpoint && checkpoint.Name == message.CheckpointAck.Name && checkpoint.Awaiting.Remove(readerId))
                {
                    foreach (var position in message.CheckpointAck.Positions)
                    {
                        if (Find(position.SegmentId) is { State: GroupSegmentState.Assigned } segment && segment.Owner == readerId)
                        {
                            Commit(segment, position.Offset);
                        }
                    }
                }

                return [];
            default:
                // An unknown message is a heartbeat.
                return [];
        }
    }

    /// <summary>Whether <paramref name="readerId"/> is a current member that holds no segment (and the group goes on).</summary>
    public bool IsIdleMember(string readerId) =>
        _sessions.ContainsKey(readerId) && !Ended && !State.Segments.Any(s => s.State == GroupSegmentState.Assigned && s.Owner == readerId);

    /// <summary>The messages queued for the reader's current session since the last call, in order.</summary>
    public IReadOnlyList<CoordinatorMessage> Drain(string readerId)
    {
        if (!_sessions.TryGetValue(readerId, out var session) || session.Outbox.Count == 0)
        {
            return [];
        }

        var messages = session.Outbox.ToList();
        session.Outbox.Clear();
        return messages;
    }

    /// <summary>
    /// Removes a reader the application knows is gone: its segments are unassigned at once, from
    /// <paramref name="positions"/> where given (never before the committed offsets). False if no such reader.
    /// </summary>
    public bool ReaderOffline(string readerId, IEnumerable<SegmentPosition> positions)
    {
        if (!_sessions.TryGetValue(readerId, out var session))
        {
            return false;
        }

        foreach (var position in positions)
        {
            if (Find(position.SegmentId) is { State: GroupSegmentState.Assigned } segment && segment.Owner == readerId)
            {
                Commit(segment, position.Offset);
            }
        }

        session.Outbox.Enqueue(Fence(0, "The reader was declared offline."));
        Remove(session);
        return true;
    }

    /// <summary>
    /// Expires silent sessions, hands out unassigned segments and revokes from readers above their share. Call on a
    /// timer (a fraction of the heartbeat interval) and after messages.
    /// </summary>
    public void Tick(DateTimeOffset now)
    {
        foreach (var session in _sessions.Values.Where(s => now - s.LastSeen > _sessionTimeout).ToList())
        {
            Remove(session);
        }

        RepeatCheckpointRequest(now);

        if (Ended)
        {
            AnnounceEnd();
            return;
        }

        if (now < _assignAfter || _sessions.Count == 0)
        {
            return;
        }

        Assign(now);
        RepeatUnacknowledged(now);
        Rebalance(now);
    }

    /// <summary>
    /// Adds the successors of completed segment <paramref name="completedId"/> (empty: none follow, e.g. its stream was
    /// sealed, or the group's end cut was reached there). A successor waits until every one of its predecessors is
    /// completed; the completed segment leaves the record.
    /// </summary>
    public void AddSuccessors(long completedId, IReadOnlyList<GroupSuccessor> successors)
    {
        foreach (var successor in successors)
        {
            if (Find(successor.SegmentId) is { } known)
            {
                if (known.State == GroupSegmentState.Future)
                {
                    known.Pending.RemoveAll(State.CompletedIds.Contains);
                    MakeReadyIfDone(known);
                }

                continue;
            }

            if (State.CompletedIds.Contains(successor.SegmentId))
            {
                continue;
            }

            var segment = new GroupSegmentRecord
            {
                Scope = successor.Scope, Stream = successor.Stream, SegmentId = successor.SegmentId, Name = successor.Name,
                KeyStart = successor.KeyStart, KeyEnd = successor.KeyEnd, State = GroupSegmentState.Future, EndOffset = successor.EndOffset,
                Pending = [.. successor.Predecessors.Where(p => !State.CompletedIds.Contains(p))],
            };
            State.Segments.Add(segment);
            MakeReadyIfDone(segment);
        }

        if (successors.Count == 0 && Find(completedId) is { State: GroupSegmentState.Completed } finished)
        {
            // Nothing follows (a sealed stream, or the end cut): a checkpoint still names where it ended, so its cut
            // covers every routing key.
            State.Finished.Add(new GroupFinishedRecord(finished.Scope, finished.Stream, finished.SegmentId, finished.CommittedOffset));
        }

        State.Segments.RemoveAll(s => s.SegmentId == completedId && s.State == GroupSegmentState.Completed);
        Dirty = GroupDirt.Now;
    }

    /// <summary>
    /// Starts the group again (update or reset) from <paramref name="segments"/>: a new generation; every assignment is
    /// fenced; the sessions stay and get segments again after the join window.
    /// </summary>
    public void Restart(IEnumerable<GroupSegmentRecord> segments, DateTimeOffset now)
    {
        foreach (var segment in State.Segments.Where(s => s.State == GroupSegmentState.Assigned))
        {
            if (segment.Owner is { } owner && _sessions.TryGetValue(owner, out var session))
            {
                session.Outbox.Enqueue(Fence(segment.SegmentId, "The group was reset."));
            }
        }

        _checkpoint = null;
        State.Generation++;
        State.Segments.Clear();
        State.Segments.AddRange(segments);
        State.CompletedIds.Clear();
        State.Finished.Clear();
        _assignAfter = now + _rules.JoinWindow;
        _endAnnounced = false;
        Dirty = GroupDirt.Now;
    }

    // ---- Membership -----------------------------------------------------------------------------------

    private CoordinatorMessage Join(string readerId, DateTimeOffset now)
    {
        if (_sessions.TryGetValue(readerId, out var earlier))
        {
            // The same reader id again (a restarted reader): the old session is over, and its segments go back to the
            // pool at their committed offsets, under new owner epochs.
            Remove(earlier);
        }

        if (_sessions.Count == 0 && now > _assignAfter)
        {
            _assignAfter = now + _rules.JoinWindow;
        }

        var member = new GroupMemberRecord { ReaderId = readerId, SessionEpoch = ++State.LastEpoch };
        State.Members.Add(member);
        var session = _sessions[readerId] = new Session(member, now);
        if (Ended)
        {
            // Joining a group that has read everything: it ends for this reader too, at once.
            session.Outbox.Enqueue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        }

        Dirty = GroupDirt.Now;
        return new CoordinatorMessage
        {
            Joined = new Joined { SessionEpoch = member.SessionEpoch, HeartbeatIntervalMs = _heartbeatIntervalMs, SessionTimeoutMs = (int)_sessionTimeout.TotalMilliseconds },
        };
    }

    private void Remove(Session session)
    {
        _sessions.Remove(session.Member.ReaderId);
        _checkpoint?.Awaiting.Remove(session.Member.ReaderId);
        State.Members.Remove(session.Member);
        foreach (var segment in State.Segments.Where(s => s.State == GroupSegmentState.Assigned && s.Owner == session.Member.ReaderId))
        {
            Unassign(segment);
        }

        Dirty = GroupDirt.Now;
    }

    // ---- Segments -------------------------------------------------------------------------------------

    /// <summary>
    /// Null if <paramref name="readerId"/> owns the segment under <paramref name="ownerEpoch"/>, else the Fenced answer;
    /// an empty answer (nothing to do, nothing to fence) for a late message of an earlier assignment of the segment to
    /// the same reader, which holds it again under a newer epoch (fencing would drop the current assignment).
    /// </summary>
    private CoordinatorMessage? Owned(string readerId, long ownerEpoch, SegmentPosition position, out GroupSegmentRecord? segment)
    {
        segment = Find(position.SegmentId);
        if (segment is { State: GroupSegmentState.Assigned } && segment.Owner == readerId && segment.OwnerEpoch == ownerEpoch)
        {
            return null;
        }

        if (segment is { State: GroupSegmentState.Assigned } && segment.Owner == readerId && segment.OwnerEpoch > ownerEpoch)
        {
            segment = null;
            return Ignored;
        }

        return Fence(position.SegmentId, $"Segment {position.Segment} is not assigned to reader {readerId} under owner epoch {ownerEpoch}.");
    }

    /// <summary>Moves the committed offset forward (a commit below it is ignored).</summary>
    private void Commit(GroupSegmentRecord segment, long offset)
    {
        if (offset > segment.CommittedOffset)
        {
            segment.CommittedOffset = offset;
            if (Dirty == GroupDirt.Clean)
            {
                Dirty = GroupDirt.Commits;
            }
        }
    }

    private void Unassign(GroupSegmentRecord segment)
    {
        segment.State = GroupSegmentState.Unassigned;
        segment.Owner = null;
        segment.Revoking = false;
        Dirty = GroupDirt.Now;
    }

    private void Complete(GroupSegmentRecord segment, long offset)
    {
        Commit(segment, offset);
        segment.State = GroupSegmentState.Completed;
        segment.Owner = null;
        segment.Revoking = false;
        segment.SuccessorsKnown = false;
        State.CompletedIds.Add(segment.SegmentId);
        foreach (var future in State.Segments.Where(s => s.State == GroupSegmentState.Future))
        {
            if (future.Pending.Remove(segment.SegmentId))
            {
                MakeReadyIfDone(future);
            }
        }

        Dirty = GroupDirt.Now;
    }

    private static void MakeReadyIfDone(GroupSegmentRecord segment)
    {
        if (segment.State == GroupSegmentState.Future && segment.Pending.Count == 0)
        {
            segment.State = GroupSegmentState.Unassigned;
        }
    }

    /// <summary>
    /// A reader mentions a segment it owns by a commit, release or completion of it, or a heartbeat's read position:
    /// then it has the Assign, which is not repeated any more.
    /// </summary>
    private static void Acknowledge(Session session, ReaderMessage message)
    {
        switch (message.KindCase)
        {
            case ReaderMessage.KindOneofCase.Heartbeat:
                foreach (var position in message.Heartbeat.ReadPositions)
                {
                    session.Unacknowledged.Remove(position.SegmentId);
                }

                break;
            case ReaderMessage.KindOneofCase.Commit:
                session.Unacknowledged.Remove(message.Commit.Position.SegmentId);
                break;
            case ReaderMessage.KindOneofCase.Release:
                session.Unacknowledged.Remove(message.Release.Position.SegmentId);
                break;
            case ReaderMessage.KindOneofCase.Completed:
                session.Unacknowledged.Remove(message.Completed.Position.SegmentId);
                break;
        }
    }

    /// <summary>
    /// Sends an Assign again when its reader has not mentioned the segment for two heartbeat intervals: the exchange
    /// that carried it may have lost its reply, and the segment would stay owned and unread. Readers ignore a repeat
    /// with the same owner epoch.
    /// </summary>
    private void RepeatUnacknowledged(DateTimeOffset now)
    {
        var after = TimeSpan.FromMilliseconds(2 * _heartbeatIntervalMs);
        foreach (var session in _sessions.Values)
        {
            foreach (var (segmentId, sent) in session.Unacknowledged.ToList())
            {
                if (Find(segmentId) is not { State: GroupSegmentState.Assigned } segment || segment.Owner != session.Member.ReaderId)
                {
                    session.Unacknowledged.Remove(segmentId);
                }
                else if (now - sent >= after)
                {
                    session.Unacknowledged[segmentId] = now;
                    session.Outbox.Enqueue(AssignOf(segment));
                }
            }
        }
    }

    private static CoordinatorMessage AssignOf(GroupSegmentRecord segment) => new()
    {
        Assign = new Assign
        {
            Scope = segment.Scope, Stream = segment.Stream, SegmentId = segment.SegmentId, Segment = segment.Name,
            OwnerEpoch = segment.OwnerEpoch, StartOffset = segment.CommittedOffset, EndOffset = segment.EndOffset,
            KeyStart = segment.KeyStart, KeyEnd = segment.KeyEnd,
        },
    };

    /// <summary>Hands out every unassigned segment: largest backlog first, each to the reader below its share with the smallest backlog.</summary>
    private void Assign(DateTimeOffset now)
    {
        var unassigned = State.Segments.Where(s => s.State == GroupSegmentState.Unassigned)
            .OrderByDescending(UnreadBytes).ThenBy(s => s.SegmentId).ToList();
        if (unassigned.Count == 0)
        {
            return;
        }

        var load = _sessions.Keys.ToDictionary(id => id, _ => (Bytes: 0L, Count: 0), StringComparer.Ordinal);
        foreach (var segment in State.Segments.Where(s => s.State == GroupSegmentState.Assigned && s.Owner is not null && load.ContainsKey(s.Owner)))
        {
            var (bytes, count) = load[segment.Owner!];
            load[segment.Owner!] = (bytes + UnreadBytes(segment), count + 1);
        }

        // Among the readers below their share of segments first, so that placement by backlog never hands a reader
        // more than the rebalance would revoke again.
        var share = Share();
        foreach (var segment in unassigned)
        {
            var reader = load.OrderBy(l => l.Value.Count < share ? 0 : 1).ThenBy(l => l.Value.Bytes).ThenBy(l => l.Value.Count)
                .ThenBy(l => l.Key, StringComparer.Ordinal).First().Key;
            segment.State = GroupSegmentState.Assigned;
            segment.Owner = reader;
            segment.OwnerEpoch = ++State.LastEpoch;
            var (bytes, count) = load[reader];
            load[reader] = (bytes + UnreadBytes(segment), count + 1);
            _sessions[reader].Outbox.Enqueue(AssignOf(segment));
            _sessions[reader].Unacknowledged[segment.SegmentId] = now;
        }

        Dirty = GroupDirt.Now;
    }

    /// <summary>Revokes one segment (its smallest backlog) from each reader above its share, at most once per revoke interval.</summary>
    private void Rebalance(DateTimeOffset now)
    {
        var share = Share();
        foreach (var session in _sessions.Values)
        {
            var owned = State.Segments.Where(s => s.State == GroupSegmentState.Assigned && s.Owner == session.Member.ReaderId).ToList();
            var keeping = owned.Count(s => !s.Revoking);
            if (keeping <= share || owned.Any(s => s.Revoking) || now - session.LastRevoke < _rules.RevokeInterval)
            {
                continue;
            }

            var segment = owned.OrderBy(UnreadBytes).ThenBy(s => s.SegmentId).First();
            segment.Revoking = true;
            session.LastRevoke = now;
            session.Outbox.Enqueue(new CoordinatorMessage { Revoke = new Revoke { SegmentId = segment.SegmentId, OwnerEpoch = segment.OwnerEpoch } });
        }
    }

    /// <summary>The most segments a reader should hold: the readable ones divided among the readers, rounded up.</summary>
    private int Share()
    {
        var readable = State.Segments.Count(s => s.State is GroupSegmentState.Assigned or GroupSegmentState.Unassigned);
        return (readable + _sessions.Count - 1) / _sessions.Count;
    }

    private void AnnounceEnd()
    {
        if (_endAnnounced)
        {
            return;
        }

        _endAnnounced = true;
        foreach (var session in _sessions.Values)
        {
            session.Outbox.Enqueue(new CoordinatorMessage { EndOfGroup = new EndOfGroup() });
        }
    }

    private long UnreadBytes(GroupSegmentRecord segment)
    {
        if (segment.State == GroupSegmentState.Completed)
        {
            return 0;
        }

        var length = _lengths.GetValueOrDefault(segment.SegmentId);
        var end = segment.EndOffset >= 0 ? Math.Min(segment.EndOffset, length) : length;
        return Math.Max(0, end - segment.CommittedOffset);
    }

    private GroupSegmentRecord? Find(long segmentId) => State.Segments.Find(s => s.SegmentId == segmentId);

    private static CoordinatorMessage Fence(long segmentId, string reason) =>
        new() { Fenced = new Fenced { SegmentId = segmentId, Reason = reason } };

    private static long SessionEpochOf(ReaderMessage message) => message.KindCase switch
    {
        ReaderMessage.KindOneofCase.Heartbeat => message.Heartbeat.SessionEpoch,
        ReaderMessage.KindOneofCase.Commit => message.Commit.SessionEpoch,
        ReaderMessage.KindOneofCase.Release => message.Release.SessionEpoch,
        ReaderMessage.KindOneofCase.Completed => message.Completed.SessionEpoch,
        ReaderMessage.KindOneofCase.CheckpointAck => message.CheckpointAck.SessionEpoch,
        ReaderMessage.KindOneofCase.Leave => message.Leave.SessionEpoch,
        _ => -1,
    };

    /// <summary>A live session: its member record, when it was last heard from, its queue and its last revoke.</summary>
    private sealed class Session(GroupMemberRecord member, DateTimeOffset now)
    {
        public GroupMemberRecord Member { get; } = member;

        public DateTimeOffset LastSeen { get; set; } = now;

        public DateTimeOffset LastRevoke { get; set; } = DateTimeOffset.MinValue;

        public Queue<CoordinatorMessage> Outbox { get; } = new();

        /// <summary>Segments assigned to this session that it has not mentioned yet, with when their Assign was last sent.</summary>
        public Dictionary<long, DateTimeOffset> Unacknowledged { get; } = [];
    }
}
