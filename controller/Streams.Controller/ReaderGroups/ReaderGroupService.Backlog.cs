using System.Text.Json;
using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Controller.ReaderGroups;

/// <summary>What the groups still have to read (for KEDA and the gauges), the segment lengths behind it, and the checkpoints retention follows.</summary>
public sealed partial class ReaderGroupService
{
    public async ValueTask<GroupBacklog?> GetBacklogAsync(string scope, string group, CancellationToken cancellationToken)
    {
        if (!_isLeader())
        {
            return await StoredBacklogAsync(scope, group, cancellationToken);
        }

        try
        {
            await RefreshLengthsAsync(scope, group, cancellationToken);
            return await WithGroupAsync(scope, group, g => Task.FromResult(g.Coordinator.Backlog()), cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>
    /// A controller that does not lead answers from the stored record (commits at most a second behind the leader's)
    /// and segment lengths it reads itself, at most every <see cref="LengthRefresh"/> per group, so that KEDA may ask
    /// any controller behind a Service. Null if there is no such group.
    /// </summary>
    private async ValueTask<GroupBacklog?> StoredBacklogAsync(string scope, string group, CancellationToken cancellationToken)
    {
        var now = _clock.GetUtcNow();
        if (_storedBacklogs.TryGetValue((scope, group), out var cached) && now - cached.At < LengthRefresh)
        {
            return cached.Backlog;
        }

        var value = await _store.GetAsync(GroupPath(scope, group), cancellationToken);
        if (value is not { } stored || JsonSerializer.Deserialize(stored.Data, ReaderGroupJsonContext.Default.ReaderGroupRecord) is not { } record)
        {
            _storedBacklogs.TryRemove((scope, group), out _);
            return null;
        }

        // Read only: a coordinator over the stored state measures the backlog and is dropped; nothing is written.
        var coordinator = new GroupCoordinator(record.State, TimeSpan.FromMilliseconds(record.HeartbeatIntervalMs), TimeSpan.FromMilliseconds(record.SessionTimeoutMs), _rules, now);
        foreach (var segment in record.State.Segments.Where(s => s.State != GroupSegmentState.Completed))
        {
            try
            {
                coordinator.SetLength(segment.SegmentId, (await _controller.GetSegmentInfoAsync(segment.Name, cancellationToken)).Length);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // A store away for now: its segment counts as read up to its commits.
            }
        }

        var backlog = coordinator.Backlog();
        _storedBacklogs[(scope, group)] = (now, backlog);
        return backlog;
    }

    public async ValueTask<IReadOnlyList<StreamCut>?> GetSubscriberCutsAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        if (!_isLeader() || !_loadedAll)
        {
            return null;
        }

        var cuts = new List<StreamCut>();
        foreach (var ((groupScope, group), _) in _groups)
        {
            try
            {
                var cut = await WithGroupAsync(groupScope, group, g =>
                {
                    if (g.Record.Retention != GroupRetention.AtLastCheckpoint || g.Record.Streams.Find(s => s.Scope == scope && s.Stream == stream) is not { } read)
                    {
                        return Task.FromResult<StreamCut?>(null);
                    }

                    var positions = g.Record.Checkpoints.Count > 0
                        ? g.Record.Checkpoints[^1].Cuts.Find(c => c.Scope == scope && c.Stream == stream)?.Positions
                        : read.Start;
                    return Task.FromResult<StreamCut?>(CutOf(scope, stream, positions ?? []));
                }, cancellationToken);
                if (cut is not null)
                {
                    cuts.Add(cut);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                // Deleted meanwhile: it holds nothing back any more.
            }
            catch (RpcException)
            {
                return null;
            }
        }

        return cuts;
    }

    /// <summary>
    /// Reads the lengths of the group's segments again when they are older than <see cref="LengthRefresh"/>: the names
    /// are taken under the group's lock, the lengths read outside it (at once, each within
    /// <see cref="LengthReadTimeout"/>), so a segment store that is away delays no reader's exchange.
    /// </summary>
    private async Task RefreshLengthsAsync(string scope, string group, CancellationToken cancellationToken)
    {
        var due = await WithGroupAsync(scope, group, g =>
        {
            var now = _clock.GetUtcNow();
            if (now - g.LastLengths < LengthRefresh)
            {
                return Task.FromResult<List<(long Id, string Name)>?>(null);
            }

            g.LastLengths = now;
            return Task.FromResult<List<(long Id, string Name)>?>([.. g.Record.State.Segments.Where(s => s.State != GroupSegmentState.Completed).Select(s => (s.SegmentId, s.Name))]);
        }, cancellationToken);
        if (due is null)
        {
            return;
        }

        var lengths = await Task.WhenAll(due.Select(async segment =>
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bounded.CancelAfter(LengthReadTimeout);
            try
            {
                return (segment.Id, Length: (long?)(await _controller.GetSegmentInfoAsync(segment.Name, bounded.Token)).Length);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                // A store away for now: the last length stands until the next refresh.
                return (segment.Id, Length: (long?)null);
            }
        }));
        await WithGroupAsync(scope, group, g =>
        {
            foreach (var (id, length) in lengths)
            {
                if (length is { } known)
                {
                    g.Coordinator.SetLength(id, known);
                }
            }

            BacklogChanged?.Invoke(g.Record.Scope, g.Record.Group);
            return Task.FromResult(true);
        }, cancellationToken);
    }
}
