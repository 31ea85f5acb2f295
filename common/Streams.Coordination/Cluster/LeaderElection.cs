using Microsoft.Extensions.Logging;
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

    public async Task RunAsync(Func<CancellationToken, Task> lead, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var session = store.SessionLost;
                if (await store.TryCreateEphemeralAsync(path, System.Text.Encoding.UTF8.GetBytes(candidate), cancellationToken))
                {
                    logger.LogInformation("{Candidate} leads ({Path}).", candidate, path);
                    IsLeader = true;
                    using var leadership = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
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

                    if (!cancellationToken.IsCancellationRequested)
                    {
                        logger.LogWarning("{Candidate} lost leadership; competing again.", candidate);
                    }

                    continue;
                }

                var (_, changed) = await store.GetAndWatchAsync(path, cancellationToken);
                await Task.WhenAny(changed, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogError(e, "Leader election on {Path} failed; retrying.", path);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }
}
