using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;
using Streams.Coordination.Metadata;

namespace Streams.Coordination.Cluster;

/// <summary>
/// Leader election on one ephemeral node: whoever creates it leads until its session ends; the others watch it and
/// try again when it vanishes. <see cref="RunAsync"/> calls the leader's work with a token that is cancelled when
/// leadership is lost (session loss), and then competes again.
/// </summary>
public sealed class LeaderElection(IMetadataStore store, string path, string candidate, ILogger logger)
{
    public bool IsLeader { get; private set; }

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

    /// <summary>Competes for leadership and leads whenever won, until <paramref name="cancellationToken"/> is cancelled.</summary>
    public Task RunAsync(Func<CancellationToken, Task> lead, CancellationToken cancellationToken) =>
        RetryLoop.RunAsync($"Leader election on {path}", async token =>
        {
            var session = store.SessionLost;
            if (!await store.TryCreateEphemeralAsync(path, System.Text.Encoding.UTF8.GetBytes(candidate), token))
            {
                var (_, changed) = await store.GetAndWatchAsync(path, token);
                await Task.WhenAny(changed, Task.Delay(TimeSpan.FromSeconds(5), token));
                return;
            }

            logger.LogInformation("{Candidate} leads ({Path}).", candidate, path);
            IsLeader = true;
            using var leadership = CancellationTokenSource.CreateLinkedTokenSource(token);
            _ = session.ContinueWith(_ => CancelQuietly(leadership), TaskScheduler.Default);
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
            }

            if (!token.IsCancellationRequested)
            {
                logger.LogWarning("{Candidate} lost leadership; competing again.", candidate);
            }
        }, logger, null, cancellationToken);
}
