using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>How a fault test runs against a cluster of real processes.</summary>
internal static class ClusterRuns
{
    /// <summary>
    /// Runs <paramref name="test"/> against <paramref name="cluster"/> within <paramref name="timeout"/>; a failure
    /// carries every process's output, so a fault test's report shows what the servers did.
    /// </summary>
    public static async Task RunAsync(this ClusterProcesses cluster, Func<ClusterProcesses, Task> test, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await test(cluster).WaitAsync(timeout, cancellationToken);
        }
        catch (XunitException e)
        {
            throw new XunitException(e.Message + "\nCluster output:\n" + cluster.Output());
        }
        catch (Exception e)
        {
            throw new InvalidOperationException("Cluster output:\n" + cluster.Output(), e);
        }
    }
}
