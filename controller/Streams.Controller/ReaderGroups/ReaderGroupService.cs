using System.Collections.Concurrent;
using System.Text.Json;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Streams.Common.Naming;
using Streams.Contracts.Controller;
using Streams.Coordination.Metadata;
using Streams.Controller.Streams;

namespace Streams.Controller.ReaderGroups;

/// <summary>
/// Reader groups on the leading controller: their records in the metadata store (/readergroups/{scope}/{group}), one
/// <see cref="GroupCoordinator"/> per group in memory, the reader sessions' exchanges, and a tick that expires silent
/// readers, hands out segments, looks up successors and refreshes segment lengths for the backlog.
/// <para>
/// Writes. Membership and assignment changes are stored before the exchange that caused them is answered (a new leader
/// must not hand a segment to a second reader); commits only are stored at most once per <see cref="CommitWriteInterval"/>,
/// so a new leader may resume a segment slightly before the last commits (at-least-once, as a reader that dies between
/// two commits). Every write is a compare-and-set on the record's version: a controller that lost the lead and wrote
/// meanwhile finds the version moved, drops its copy and answers UNAVAILABLE.
/// </para>
/// <para>
/// Cuts, checkpoints, reset and update. A group reads each stream from its start cut (or head) to its end cut (or
/// without end), <see cref="GroupCuts"/>. A checkpoint asks every reader for its commits and, once all answered, stores
/// the group's committed positions as a cut per stream; resetting to it (or any cut) starts a new generation there.
/// Not built yet: automatic checkpoints and retention that follows a group (refused with INVALID_ARGUMENT).
/// </para>
/// </summary>
public sealed partial class ReaderGroupService : IReaderGroupBacklog
{
    /// <summary>Commits are stored at most this often per group.</summary>
    public static readonly TimeSpan CommitWriteInterval = TimeSpan.FromSeconds(1);

    /// <summary>Segment lengths (for the backlog) are read again after this long.</summary>
    public static readonly TimeSpan LengthRefresh = TimeSpan.FromSeconds(2);

    /// <summary>The longest one segment length is waited for.</summary>
    private static readonly TimeSpan LengthReadTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The longest an idle reader's exchange is held for its next message, and how often it is looked at.</summary>
    private static readonly TimeSpan IdleHoldMax = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(50);

    /// <summary>How often a checkpoint being taken is looked at for the readers' answers.</summary>
    private static readonly TimeSpan CheckpointPoll = TimeSpan.FromMilliseconds(50);

    private const string Root = "/readergroups";
    private const int DefaultHeartbeatMs = 3000;
    private const int DefaultSessionTimeoutMs = 30000;

    private readonly IMetadataStore _store;
    private readonly ControllerService _controller;
    private readonly Func<bool> _isLeader;
    private readonly CoordinatorRules _rules;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Scope, string Group), Group> _groups = new();
    private volatile bool _loadedAll;
    private readonly ConcurrentDictionary<(string Scope, string Group), (DateTimeOffset At, GroupBacklog Backlog)> _storedBacklogs = new();

    public ReaderGroupService(IMetadataStore store, ControllerService controller, Func<bool> isLeader, ILogger<ReaderGroupService> logger, CoordinatorRules? rules = null, TimeProvider? clock = null)
    {
        _store = store;
        _controller = controller;
        _isLeader = isLeader;
        _logger = logger;
        _rules = rules ?? new CoordinatorRules();
        _clock = clock ?? TimeProvider.System;
    }

    public event Action<string, string>? BacklogChanged;

    public static string GroupPath(string scope, string group) => $"{Root}/{scope}/{group}";

    /// <summary>The backlog of every group this controller coordinates, as of its last tick (for the gauges).</summary>
    public IEnumerable<(string Scope, string Group, GroupBacklog Backlog)> Backlogs =>
        _groups.Select(g => (g.Key.Scope, g.Key.Group, g.Value.Backlog));

    /// <summary>How often this controller wrote each group's record since it took the group over (for the counter).</summary>
    public IEnumerable<(string Scope, string Group, long Writes)> RecordWrites =>
        _groups.Select(g => (g.Key.Scope, g.Key.Group, Interlocked.Read(ref g.Value.Writes)));

    public async Task<CreateReaderGroupReply> CreateAsync(CreateReaderGroupRequest request, CancellationToken cancellationToken)
    {
        Validate(request.Scope, request.Group);
        EnsureLeading();
        var config = request.Config ?? throw Invalid("A reader group needs a config with at least one stream.");
        var (heartbeat, timeout, streams) = ValidateConfig(config);
        var record = new ReaderGroupRecord
        {
            Scope = request.Scope, Group = request.Group, HeartbeatIntervalMs = heartbeat, SessionTimeoutMs = timeout,
            CheckpointIntervalMs = config.CheckpointIntervalMs, Retention = config.Retention,
            CreatedAtUnixMs = _clock.GetUtcNow().ToUnixTimeMilliseconds(), Streams = streams,
        };
        foreach (var stream in streams)
        {
            record.State.Segments.AddRange(await StartOfAsync(stream, stream.Start, cancellationToken));
        }

        var created = await _store.TryCreateAsync(GroupPath(record.Scope, record.Group), Serialize(record), cancellationToken);
        if (created)
        {
            _logger.LogInformation("Created reader group {Scope}/{Group} over {Streams}.", record.Scope, record.Group, string.Join(", ", record.Streams.Select(s => $"{s.Scope}/{s.Stream}")));
        }

        return new CreateReaderGroupReply { Created = created, Info = await DescribeAsync(request.Scope, request.Group, cancellationToken) };
    }

    public async Task<ReaderGroupInfo> DescribeAsync(string scope, string group, CancellationToken cancellationToken)
    {
        Validate(scope, group);
        return await WithGroupAsync(scope, group, g =>
        {
            var info = new ReaderGroupInfo
            {
                Scope = scope, Group = group, CreatedAtUnixMs = g.Record.CreatedAtUnixMs,
                Config = new ReaderGroupConfig
                {
                    HeartbeatIntervalMs = g.Record.HeartbeatIntervalMs, SessionTimeoutMs = g.Record.SessionTimeoutMs,
                    CheckpointIntervalMs = g.Record.CheckpointIntervalMs, Retention = g.Record.Retention,
                },
            };
            info.Config.Streams.AddRange(g.Record.Streams.Select(s => new ReaderGroupStream
            {
                Scope = s.Scope, Stream = s.Stream, Start = CutOf(s.Scope, s.Stream, s.Start), End = CutOf(s.Scope, s.Stream, s.End),
            }));
            info.Checkpoints.AddRange(g.Record.Checkpoints.Select(CheckpointOf));
            g.Coordinator.Describe(info);
            return Task.FromResult(info);
        }, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> ListAsync(string scope, CancellationToken cancellationToken)
    {
        if (NameValidator.Validate(scope, "scope") is { } error)
        {
            throw Invalid(error);
        }

        return await _store.GetChildrenAsync($"{Root}/{scope}", cancellationToken);
    }

    public async Task<bool> DeleteAsync(string scope, string group, CancellationToken cancellationToken)
    {
        Validate(scope, group);
        EnsureLeading();
        var deleted = await _store.TryDeleteAsync(GroupPath(scope, group), -1, cancellationToken);
        _groups.TryRemove((scope, group), out _);
        return deleted;
    }

    public async Task<bool> ReaderOfflineAsync(ReaderOfflineRequest request, CancellationToken cancellationToken)
    {
        Validate(request.Scope, request.Group);
        return await WithGroupAsync(request.Scope, request.Group, async g =>
        {
            var removed = g.Coordinator.ReaderOffline(request.ReaderId, request.Positions);
            await SettleAsync(g, cancellationToken);
            return removed;
        }, cancellationToken);
    }

    /// <summary>
    /// One exchange of a reader's session: its messages since the last one, answered by what the coordinator says at
    /// once and everything queued for the reader.
    /// </summary>
    public async Task<IReadOnlyList<CoordinatorMessage>> ExchangeAsync(string scope, string group, string readerId, IEnumerable<ReaderMessage> messages, CancellationToken cancellationToken, bool holdWhenIdle = false)
    {
        Validate(scope, group);
        if (string.IsNullOrEmpty(readerId) || readerId.Length > 255)
        {
            throw Invalid("A reader id is 1 to 255 characters.");
        }

        var (replies, hold) = await WithGroupAsync(scope, group, async g =>
        {
            var now = _clock.GetUtcNow();
            var replies = new List<CoordinatorMessage>();
            foreach (var message in messages)
            {
                replies.AddRange(g.Coordinator.Handle(readerId, message, now));
            }

            await SettleAsync(g, cancellationToken);
            replies.AddRange(g.Coordinator.Drain(readerId));
            var idle = holdWhenIdle && replies.Count == 0 && g.Coordinator.IsIdleMember(readerId);
            return (replies, idle ? TimeSpan.FromMilliseconds(Math.Min(g.Record.HeartbeatIntervalMs / 3, IdleHoldMax.TotalMilliseconds)) : TimeSpan.Zero);
        }, cancellationToken);

        // A reader that holds nothing waits here for its first message (an Assign after the join window, a revoked
        // segment released by another reader, EndOfGroup) instead of until its next exchange: a long poll, answered
        // within ~50 ms of the group's tick (every 200 ms) queuing it; it still returns within a third of the
        // heartbeat interval.
        var deadline = _clock.GetUtcNow() + hold;
        while (replies.Count == 0 && _clock.GetUtcNow() < deadline)
        {
            await Task.Delay(IdlePoll, _clock, cancellationToken);
            replies = await WithGroupAsync(scope, group, g => Task.FromResult(g.Coordinator.Drain(readerId).ToList()), cancellationToken);
        }

        return replies;
    }

    /// <summary>Ticks every group this controller holds, until <paramref name="cancellationToken"/> ends (a leadership).</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200), _clock);
        _loadedAll = false;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                if (!_isLeader())
                {
                    _groups.Clear();
                    _loadedAll = false;
                    continue;
                }

                // Once per leadership: every stored group, so that readers who never come back are expired and every
                // group's backlog is measured, not only those a reader or KEDA asked about.
                _loadedAll = _loadedAll || await LoadAllAsync(cancellationToken);

                foreach (var ((scope, group), _) in _groups)
                {
                    try
                    {
                        await RefreshLengthsAsync(scope, group, cancellationToken);
                        await WithGroupAsync(scope, group, async g =>
                        {
                            await AutoCheckpointAsync(g, cancellationToken);
                            await SettleAsync(g, cancellationToken);
                            return true;
                        }, cancellationToken);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        _logger.LogWarning("Reader group {Scope}/{Group}: {Error}", scope, group, e.Message);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            _groups.Clear();
            _loadedAll = false;
        }
    }

    // ---- Groups in memory -------------------------------------------------------------------------------

    private async Task<T> WithGroupAsync<T>(string scope, string group, Func<Group, Task<T>> work, CancellationToken cancellationToken)
    {
        EnsureLeading();
        var g = _groups.TryGetValue((scope, group), out var known) ? known : await LoadAsync(scope, group, cancellationToken);
        await g.Lock.WaitAsync(cancellationToken);
        try
        {
            if (!_groups.TryGetValue((scope, group), out var current) || current != g)
            {
                // Deleted or dropped while this call waited.
                throw new RpcException(new Status(StatusCode.Unavailable, $"Reader group {scope}/{group} changed meanwhile; try again."));
            }

            return await work(g);
        }
        finally
        {
            g.Lock.Release();
        }
    }

    /// <summary>Loads every stored group not held yet; false if the store could not be read (tried again on the next tick).</summary>
    private async Task<bool> LoadAllAsync(CancellationToken cancellationToken)
    {
        try
        {
            foreach (var scope in await _store.GetChildrenAsync(Root, cancellationToken))
            {
                foreach (var group in await _store.GetChildrenAsync($"{Root}/{scope}", cancellationToken))
                {
                    if (!_groups.ContainsKey((scope, group)))
                    {
                        await LoadAsync(scope, group, cancellationToken);
                    }
                }
            }

            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogWarning("Loading the reader groups failed ({Error}); trying again.", e.Message);
            return false;
        }
    }

    private async Task<Group> LoadAsync(string scope, string group, CancellationToken cancellationToken)
    {
        var value = await _store.GetAsync(GroupPath(scope, group), cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Reader group {scope}/{group} does not exist."));
        var record = JsonSerializer.Deserialize(value.Data, ReaderGroupJsonContext.Default.ReaderGroupRecord)
            ?? throw new RpcException(new Status(StatusCode.DataLoss, $"Reader group {scope}/{group}: its stored record is empty."));
        var now = _clock.GetUtcNow();
        var coordinator = new GroupCoordinator(record.State, TimeSpan.FromMilliseconds(record.HeartbeatIntervalMs), TimeSpan.FromMilliseconds(record.SessionTimeoutMs), _rules, now);
        var loaded = new Group(record, value.Version, coordinator);
        return _groups.GetOrAdd((scope, group), loaded);
    }

    /// <summary>Ticks the coordinator, adds the successors of completed segments, and stores what must be stored (group lock held).</summary>
    private async Task SettleAsync(Group g, CancellationToken cancellationToken)
    {
        var now = _clock.GetUtcNow();
        g.Coordinator.Tick(now);
        var added = false;
        foreach (var completed in g.Coordinator.SuccessorLookups.ToList())
        {
            var end = g.Record.Streams.Find(s => s.Scope == completed.Scope && s.Stream == completed.Stream)?.End;
            if (end is not null && end.ContainsKey(completed.SegmentId))
            {
                // Read to the end cut: what follows is beyond it (and the segment may still be open).
                g.Coordinator.AddSuccessors(completed.SegmentId, []);
                added = true;
                continue;
            }

            var reply = await _controller.GetSuccessorsAsync(completed.Name, cancellationToken);
            if (reply.Successors.Count > 0 || reply.State == StreamState.Sealed)
            {
                var ranges = end is null ? null : GroupCuts.Ranges(await _controller.ListSegmentsAsync(completed.Scope, completed.Stream, cancellationToken));
                var successors = new List<GroupSuccessor>();
                foreach (var s in reply.Successors)
                {
                    // Past the end cut, nothing is read.
                    if ((ranges is null ? -1 : GroupCuts.EndOf(s.Segment, ranges, end)) is { } endOffset)
                    {
                        successors.Add(new GroupSuccessor(completed.Scope, completed.Stream, s.Segment.SegmentId, s.Segment.Segment,
                            s.Segment.KeyStart, s.Segment.KeyEnd, [.. s.PredecessorIds], endOffset));
                    }
                }

                g.Coordinator.AddSuccessors(completed.SegmentId, successors);
                added = true;
            }

            // Otherwise a scale is still completing: looked up again on the next tick.
        }

        if (added)
        {
            g.Coordinator.Tick(now);
        }

        g.Backlog = g.Coordinator.Backlog();

        if (g.Coordinator.Dirty == GroupDirt.Now || (g.Coordinator.Dirty == GroupDirt.Commits && now - g.LastWrite >= CommitWriteInterval))
        {
            await WriteAsync(g, now, cancellationToken);
            BacklogChanged?.Invoke(g.Record.Scope, g.Record.Group);
        }
    }

    private async Task WriteAsync(Group g, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var version = await _store.TrySetAsync(GroupPath(g.Record.Scope, g.Record.Group), Serialize(g.Record), g.Version, cancellationToken);
        if (version is not { } written)
        {
            _groups.TryRemove(new KeyValuePair<(string, string), Group>((g.Record.Scope, g.Record.Group), g));
            _loadedAll = false; // read every group again before retention trusts the set of subscribers
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"Reader group {g.Record.Scope}/{g.Record.Group} was changed or deleted by another controller; try again."));
        }

        g.Version = written;
        g.LastWrite = now;
        Interlocked.Increment(ref g.Writes);
        g.Coordinator.MarkWritten();
    }

    /// <summary>The segments a group starts a stream with, from <paramref name="start"/> (null: the stream's head) to the stream's end cut.</summary>
    private async Task<List<GroupSegmentRecord>> StartOfAsync(GroupStreamRecord stream, IReadOnlyDictionary<long, long>? start, CancellationToken cancellationToken)
    {
        var list = await _controller.ListSegmentsAsync(stream.Scope, stream.Stream, cancellationToken);
        try
        {
            return GroupCuts.Start(stream.Scope, stream.Stream, list, start, stream.End);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }

    /// <summary>Heartbeat, session timeout and streams (with their cuts) of a config, or INVALID_ARGUMENT saying what to change.</summary>
    private static (int Heartbeat, int Timeout, List<GroupStreamRecord> Streams) ValidateConfig(ReaderGroupConfig config)
    {
        if (config.Streams.Count == 0)
        {
            throw Invalid("A reader group reads at least one stream: name it in config.streams.");
        }

        if (config.CheckpointIntervalMs != 0 && config.CheckpointIntervalMs is < 1000 or > 86_400_000)
        {
            throw Invalid($"checkpoint_interval_ms is 0 (no automatic checkpoints) or 1000 to 86400000 (is {config.CheckpointIntervalMs}).");
        }

        if (!Enum.IsDefined(config.Retention))
        {
            throw Invalid($"Unknown group retention {config.Retention}.");
        }

        var heartbeat = config.HeartbeatIntervalMs == 0 ? DefaultHeartbeatMs : config.HeartbeatIntervalMs;
        var timeout = config.SessionTimeoutMs == 0 ? DefaultSessionTimeoutMs : config.SessionTimeoutMs;
        if (heartbeat is < 100 or > 60_000 || timeout < 2 * heartbeat || timeout > 600_000)
        {
            throw Invalid($"heartbeat_interval_ms must be 100–60000 and session_timeout_ms at least twice it and at most 600000 (are {heartbeat} and {timeout}).");
        }

        var streams = new List<GroupStreamRecord>();
        foreach (var stream in config.Streams)
        {
            if (streams.Any(s => s.Scope == stream.Scope && s.Stream == stream.Stream))
            {
                throw Invalid($"Stream {stream.Scope}/{stream.Stream} is named twice.");
            }

            streams.Add(new GroupStreamRecord(stream.Scope, stream.Stream, PositionsOf(stream, stream.Start, "start"), PositionsOf(stream, stream.End, "end")));
        }

        return (heartbeat, timeout, streams);
    }

    private static Dictionary<long, long>? PositionsOf(ReaderGroupStream stream, StreamCut? cut, string which)
    {
        if (cut is null)
        {
            return null;
        }

        if ((cut.Scope.Length > 0 && cut.Scope != stream.Scope) || (cut.Stream.Length > 0 && cut.Stream != stream.Stream))
        {
            throw Invalid($"The {which} cut of {stream.Scope}/{stream.Stream} names stream {cut.Scope}/{cut.Stream}.");
        }

        return new Dictionary<long, long>(cut.Positions);
    }

    private static StreamCut? CutOf(string scope, string stream, Dictionary<long, long>? positions)
    {
        if (positions is null)
        {
            return null;
        }

        var cut = new StreamCut { Scope = scope, Stream = stream };
        cut.Positions.Add(positions);
        return cut;
    }

    private static Checkpoint CheckpointOf(GroupCheckpointRecord record)
    {
        var checkpoint = new Checkpoint { Name = record.Name, Complete = true, CreatedAtUnixMs = record.CreatedAtUnixMs };
        checkpoint.Cuts.AddRange(record.Cuts.Select(c => CutOf(c.Scope, c.Stream, c.Positions)!));
        return checkpoint;
    }

    private void EnsureLeading()
    {
        if (!_isLeader())
        {
            _groups.Clear();
            _loadedAll = false;
            throw new RpcException(new Status(StatusCode.Unavailable, "This controller does not lead: reader groups are coordinated by the leading controller."));
        }
    }

    private static void Validate(string scope, string group)
    {
        if ((NameValidator.Validate(scope, "scope") ?? NameValidator.Validate(group, "reader group")) is { } error)
        {
            throw Invalid(error);
        }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    private static byte[] Serialize(ReaderGroupRecord record) => JsonSerializer.SerializeToUtf8Bytes(record, ReaderGroupJsonContext.Default.ReaderGroupRecord);

    /// <summary>A group held in memory: its record (whose State the coordinator changes), the record's version, and a lock.</summary>
    private sealed class Group(ReaderGroupRecord record, long version, GroupCoordinator coordinator)
    {
        public ReaderGroupRecord Record { get; } = record;

        public long Version { get; set; } = version;

        public GroupCoordinator Coordinator { get; } = coordinator;

        public SemaphoreSlim Lock { get; } = new(1, 1);

        public DateTimeOffset LastWrite { get; set; }

        /// <summary>Record writes by this controller (a field, for Interlocked).</summary>
        public long Writes;

        public DateTimeOffset LastLengths { get; set; }

        /// <summary>The automatic checkpoint being taken, and when the last one was started.</summary>
        public string? AutoCheckpoint { get; set; }

        public DateTimeOffset AutoStarted { get; set; }

        /// <summary>As of the last settle; the gauges read it without the lock (a torn read mixes two recent figures).</summary>
        public GroupBacklog Backlog { get; set; }
    }
}
