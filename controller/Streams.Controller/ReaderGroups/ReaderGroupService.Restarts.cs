using Grpc.Core;
using Microsoft.Extensions.Logging;
using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>Checkpoints (on demand and automatic), and starting a group again: reset to cuts, update of its configuration.</summary>
public sealed partial class ReaderGroupService
{
    /// <summary>
    /// Takes checkpoint <paramref name="name"/>: asks every reader for its commits and, once each answered (or left),
    /// stores the group's committed positions as a cut per stream. An existing name returns that checkpoint;
    /// DEADLINE_EXCEEDED if a reader does not answer within <paramref name="timeout"/>.
    /// </summary>
    public async Task<Checkpoint> CreateCheckpointAsync(string scope, string group, string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Validate(scope, group);
        if (string.IsNullOrEmpty(name) || name.Length > 255)
        {
            throw Invalid("A checkpoint name is 1 to 255 characters.");
        }

        var started = await WithGroupAsync(scope, group, async g =>
        {
            if (g.Record.Checkpoints.Find(c => c.Name == name) is { } existing)
            {
                return CheckpointOf(existing);
            }

            if (g.Coordinator.CheckpointInProgress is { } other && other != name)
            {
                if (other != g.AutoCheckpoint)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Checkpoint {other} of {scope}/{group} is being taken: try again once it completes."));
                }

                // An automatic one gives way (it is taken again an interval later).
                g.Coordinator.EndCheckpoint();
                g.AutoCheckpoint = null;
            }

            if (g.Coordinator.CheckpointInProgress is null)
            {
                g.Coordinator.StartCheckpoint(name, _clock.GetUtcNow());
            }

            return null;
        }, cancellationToken);
        if (started is not null)
        {
            return started;
        }

        var deadline = _clock.GetUtcNow() + timeout;
        try
        {
            while (true)
            {
                var done = await WithGroupAsync(scope, group, async g =>
                {
                    if (g.Coordinator.CheckpointInProgress != name)
                    {
                        return g.Record.Checkpoints.Find(c => c.Name == name) is { } taken ? CheckpointOf(taken)
                            : throw new RpcException(new Status(StatusCode.Aborted, $"Checkpoint {name} of {scope}/{group} was abandoned: the group was reset or updated meanwhile."));
                    }

                    if (!g.Coordinator.CheckpointAcknowledged(name))
                    {
                        if (_clock.GetUtcNow() < deadline)
                        {
                            return null;
                        }

                        g.Coordinator.EndCheckpoint();
                        throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"Checkpoint {name} of {scope}/{group}: not every reader answered within {timeout.TotalSeconds:0.#} s."));
                    }

                    return await StoreCheckpointAsync(g, name, cancellationToken);
                }, cancellationToken);
                if (done is not null)
                {
                    return done;
                }

                await Task.Delay(CheckpointPoll, _clock, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // The caller went away: the checkpoint goes too, so that the next (or an automatic one) can be taken.
            try
            {
                await WithGroupAsync(scope, group, g =>
                {
                    if (g.Coordinator.CheckpointInProgress == name && g.AutoCheckpoint != name)
                    {
                        g.Coordinator.EndCheckpoint();
                    }

                    return Task.FromResult(true);
                }, CancellationToken.None);
            }
            catch (RpcException)
            {
                // Gone or no longer led here: nothing holds the checkpoint any more.
            }

            throw;
        }
    }

    /// <summary>
    /// After a reset or an update, the group's position is where it starts again, not its last checkpoint (which may be
    /// past it): recorded as a checkpoint named "{kind}-{unix ms}", so that retention following the group keeps what it
    /// is about to read again. Written with the restart.
    /// </summary>
    private void RecordRestart(ReaderGroupRecord record, GroupCoordinator coordinator, string kind)
    {
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        record.Checkpoints.Add(new GroupCheckpointRecord($"{kind}-{now}", now,
            [.. record.Streams.Select(s => new GroupCutRecord(s.Scope, s.Stream, coordinator.Positions(s.Scope, s.Stream)))]));
        if (record.Checkpoints.Count > ReaderGroupRecord.MaxCheckpoints)
        {
            record.Checkpoints.RemoveAt(0);
        }
    }

    /// <summary>Stores the acknowledged checkpoint as a cut per stream of the committed positions (group lock held).</summary>
    private async Task<Checkpoint> StoreCheckpointAsync(Group g, string name, CancellationToken cancellationToken)
    {
        var checkpoint = new GroupCheckpointRecord(name, _clock.GetUtcNow().ToUnixTimeMilliseconds(),
            [.. g.Record.Streams.Select(s => new GroupCutRecord(s.Scope, s.Stream, g.Coordinator.Positions(s.Scope, s.Stream)))]);
        g.Record.Checkpoints.Add(checkpoint);
        if (g.Record.Checkpoints.Count > ReaderGroupRecord.MaxCheckpoints)
        {
            g.Record.Checkpoints.RemoveAt(0);
        }

        g.Coordinator.EndCheckpoint();
        if (g.AutoCheckpoint == name)
        {
            g.AutoCheckpoint = null;
        }

        await WriteAsync(g, _clock.GetUtcNow(), cancellationToken);
        _logger.LogInformation("Reader group {Scope}/{Group}: checkpoint {Name} taken.", g.Record.Scope, g.Record.Group, name);
        return CheckpointOf(checkpoint);
    }

    /// <summary>
    /// Automatic checkpoints (group lock held): one named "auto-{unix ms}" every checkpoint interval, stored once every
    /// reader answered; abandoned after a session timeout without every answer, and tried again an interval later.
    /// </summary>
    private async Task AutoCheckpointAsync(Group g, CancellationToken cancellationToken)
    {
        var now = _clock.GetUtcNow();
        if (g.AutoCheckpoint is { } name)
        {
            if (g.Coordinator.CheckpointInProgress != name)
            {
                g.AutoCheckpoint = null;
            }
            else if (g.Coordinator.CheckpointAcknowledged(name))
            {
                await StoreCheckpointAsync(g, name, cancellationToken);
            }
            else if (now - g.AutoStarted > TimeSpan.FromMilliseconds(g.Record.SessionTimeoutMs))
            {
                g.Coordinator.EndCheckpoint();
                g.AutoCheckpoint = null;
                _logger.LogWarning("Reader group {Scope}/{Group}: automatic checkpoint {Name} abandoned, not every reader answered within the session timeout.", g.Record.Scope, g.Record.Group, name);
            }

            return;
        }

        var interval = TimeSpan.FromMilliseconds(g.Record.CheckpointIntervalMs);
        var last = DateTimeOffset.FromUnixTimeMilliseconds(g.Record.Checkpoints.Count > 0 ? g.Record.Checkpoints[^1].CreatedAtUnixMs : g.Record.CreatedAtUnixMs);
        if (g.Record.CheckpointIntervalMs == 0 || g.Coordinator.CheckpointInProgress is not null || now - last < interval || now - g.AutoStarted < interval)
        {
            return;
        }

        g.AutoCheckpoint = $"auto-{now.ToUnixTimeMilliseconds()}";
        g.AutoStarted = now;
        g.Coordinator.StartCheckpoint(g.AutoCheckpoint, now);
    }

    /// <summary>
    /// Moves the group to <paramref name="cuts"/> (a stream not named restarts at its configured start): a new
    /// generation, every assignment fenced, the readers given segments again after the join window.
    /// </summary>
    public async Task<ReaderGroupInfo> ResetAsync(string scope, string group, IReadOnlyList<StreamCut> cuts, CancellationToken cancellationToken)
    {
        Validate(scope, group);
        await WithGroupAsync(scope, group, async g =>
        {
            foreach (var cut in cuts)
            {
                if (!g.Record.Streams.Any(s => s.Scope == cut.Scope && s.Stream == cut.Stream))
                {
                    throw Invalid($"Stream {cut.Scope}/{cut.Stream} is not read by reader group {scope}/{group}.");
                }
            }

            var segments = new List<GroupSegmentRecord>();
            foreach (var stream in g.Record.Streams)
            {
                var cut = cuts.FirstOrDefault(c => c.Scope == stream.Scope && c.Stream == stream.Stream);
                if (cut is { Positions.Count: 0 })
                {
                    // A checkpoint taken after the group read all of this stream: nothing of it to read.
                    continue;
                }

                segments.AddRange(await StartOfAsync(stream, cut is null ? stream.Start : new Dictionary<long, long>(cut.Positions), cancellationToken));
            }

            g.Coordinator.Restart(segments, _clock.GetUtcNow());
            RecordRestart(g.Record, g.Coordinator, "reset");
            await SettleAsync(g, cancellationToken);
            _logger.LogInformation("Reader group {Scope}/{Group} reset (generation {Generation}).", scope, group, g.Record.State.Generation);
            return true;
        }, cancellationToken);
        return await DescribeAsync(scope, group, cancellationToken);
    }

    /// <summary>
    /// Replaces the group's configuration and starts it again: from the new start cuts, or where it is for a stream it
    /// keeps without one (its committed positions, bounded by the new end cut); a stream it no longer reads is dropped.
    /// </summary>
    public async Task<ReaderGroupInfo> UpdateAsync(UpdateReaderGroupRequest request, CancellationToken cancellationToken)
    {
        Validate(request.Scope, request.Group);
        var (heartbeat, timeout, streams) = ValidateConfig(request.Config ?? throw Invalid("An update needs a config with at least one stream."));
        await WithGroupAsync(request.Scope, request.Group, async g =>
        {
            var segments = new List<GroupSegmentRecord>();
            foreach (var stream in streams)
            {
                var where = stream.Start;
                if (where is null && g.Record.Streams.Any(s => s.Scope == stream.Scope && s.Stream == stream.Stream))
                {
                    where = g.Coordinator.Positions(stream.Scope, stream.Stream);
                    if (where.Count == 0)
                    {
                        // Read to its end already: nothing more of it.
                        continue;
                    }
                }

                segments.AddRange(await StartOfAsync(stream, where, cancellationToken));
            }

            g.Record.Streams = streams;
            g.Record.HeartbeatIntervalMs = heartbeat;
            g.Record.SessionTimeoutMs = timeout;
            g.Record.CheckpointIntervalMs = request.Config.CheckpointIntervalMs;
            g.Record.Retention = request.Config.Retention;
            var now = _clock.GetUtcNow();
            var coordinator = new GroupCoordinator(g.Record.State, TimeSpan.FromMilliseconds(heartbeat), TimeSpan.FromMilliseconds(timeout), _rules, now);
            coordinator.Restart(segments, now);
            RecordRestart(g.Record, coordinator, "update");
            var updated = new Group(g.Record, g.Version, coordinator) { LastWrite = g.LastWrite };
            try
            {
                await SettleAsync(updated, cancellationToken);
            }
            catch
            {
                // Not stored: the record in memory no longer matches the store; read it again on the next call.
                _groups.TryRemove(new KeyValuePair<(string, string), Group>((request.Scope, request.Group), g));
                _loadedAll = false;
                throw;
            }

            _groups[(request.Scope, request.Group)] = updated;
            _logger.LogInformation("Reader group {Scope}/{Group} updated (generation {Generation}).", request.Scope, request.Group, g.Record.State.Generation);
            return true;
        }, cancellationToken);
        return await DescribeAsync(request.Scope, request.Group, cancellationToken);
    }
}
