using System.Text;
using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;
using Streams.Coordination.Metadata;

namespace Streams.Coordination.Cluster;

/// <summary>
/// Leader election on one ephemeral node: whoever creates it leads until its session ends; the others watch it and
/// try again the moment it vanishes. <see cref="RunAsync"/> calls the leader's work with a token that is cancelled when
/// leadership is lost (session loss, or the node no longer being this instance's), and then competes again.
/// <para>
/// How fast a dead leader is replaced: its node goes when ZooKeeper expires its session, one session timeout after
/// its last heartbeat (ZooKeeper checks expiry once per tick, so up to a tick later); the watch then wakes the others
/// at once. The session timeout dominates everything else.
/// </para>
/// <para>
/// The node holds the candidate's name and an id unique to this instance, so that an instance recognises its own node:
/// a create whose reply was lost on a broken connection, or leadership work that failed while the node stayed, would
/// otherwise leave the node held by a live session that never leads, and no other candidate could ever lead.
/// </para>
/// </summary>
public sealed class LeaderElection(IMetadataStore store, string path, string candidate, ILogger logger)
{
    /// <summary>A missed watch (it cannot be ruled out across reconnects) costs at most this long.</summary>
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(5);

    private readonly byte[] _claim = Encoding.UTF8.GetBytes($"{candidate}\n{Guid.NewGuid():N}");

    public bool IsLeader { get; private set; }

    /// <summary>Competes for leadership and leads whenever won, until <paramref name="cancellationToken"/> is cancelled.</summary>
    public Task RunAsync(Func<CancellationToken, Task> lead, CancellationToken cancellationToken) =>
        RetryLoop.RunAsync($"Leader election on {path}", async token =>
        {
            var session = store.SessionLost;
            if (!await store.TryCreateEphemeralAsync(path, _claim, token))
            {
                var (holder, changed) = await store.GetAndWatchAsync(path, token);
                if (!IsOurs(holder))
                {
                    await Task.WhenAny(changed, Task.Delay(RecheckInterval, token));
                    return;
                }

                logger.LogInformation("{Path} is already this instance's; leading.", path);
            }

            logger.LogInformation("{Candidate} leads ({Path}).", candidate, path);
            IsLeader = true;
            using var leadership = CancellationTokenSource.CreateLinkedTokenSource(token);
            _ = session.ContinueWith(_ => CancelQuietly(leadership), TaskScheduler.Default);
            var claim = WatchClaimAsync(leadership);
            try
            {
                await lead(leadership.Token);
            }
            catch (OperationCanceledException) when (leadership.IsCancellationRequested)
            {
            }
            finally
            {
                IsLeader = false;
                CancelQuietly(leadership);
                await claim;
            }

            if (!token.IsCancellationRequested)
            {
                logger.LogWarning("{Candidate} lost leadership; competing again.", candidate);
            }
        }, logger, null, cancellationToken);

    private bool IsOurs(VersionedValue? holder) => holder is { } value && value.Data.AsSpan().SequenceEqual(_claim);

    /// <summary>
    /// Ends the leadership when the node stops being this instance's (deleted, or replaced after an expiry this
    /// instance has not heard of yet). Failing reads are retried: a lost session ends the leadership by itself.
    /// </summary>
    private async Task WatchClaimAsync(CancellationTokenSource leadership)
    {
        var token = leadership.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var (holder, changed) = await store.GetAndWatchAsync(path, token);
                if (!IsOurs(holder))
                {
                    logger.LogWarning("{Path} is no longer this instance's; leadership ends.", path);
                    CancelQuietly(leadership);
                    return;
                }

                await Task.WhenAny(changed, Task.Delay(RecheckInterval, token));
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogDebug("Checking {Path} failed ({Error}); checking again.", path, e.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500), token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Leadership already ended.
        }
    }
}
