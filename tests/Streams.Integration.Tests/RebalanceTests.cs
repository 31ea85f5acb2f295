using System.Collections.Concurrent;
using System.Globalization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A segment store that rejoins a cluster gets its share of containers back, and that costs the writers no more than
/// one container recovery at a time: the controller moves one container, waits until its new owner serves it, then
/// moves the next. Real processes (ZooKeeper, three bookies, a controller, two segment stores); the stall is the
/// longest wait of any routing key for its next acknowledgement, measured and printed for the failover and the rejoin.
/// </summary>
public sealed class RebalanceTests
{
    private const int Containers = 4;
    private const int Keys = 16;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_rejoining_segment_store_takes_containers_back_with_writes_stalling_at_most_one_recovery()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 2, quorums: (3, 3, 2), containers: Containers);
        await cluster.RunAsync(RunAsync, TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);
    }

    private static async Task RunAsync(ClusterProcesses cluster)
    {
        await cluster.WaitForContainersAsync(Containers, Bound);
        await using var client = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "rejoin", Containers);
        var load = new KeyedLoad(writer);
        Assert.True(await load.WaitForAsync(2_000, Bound), $"No write load: {load}");

        // One store dies: its containers fail over to the other.
        var killedAt = load.Now;
        cluster.SegmentStores[1].Kill();
        await cluster.WaitForContainersAsync(Containers, Bound, among: [cluster.SegmentStores[0]]);
        Assert.True(await load.WaitForAsync(load.Acknowledged + 2_000, Bound), $"Writes did not resume after the failover: {load}");
        var failover = load.LongestStall(killedAt);

        // It comes back: it gets half the containers again.
        var rejoinedAt = load.Now;
        var rejoined = await cluster.RestartSegmentStoreAsync(1);
        await WaitForOwnedAsync(cluster, rejoined, Containers / 2);
        await cluster.WaitForContainersAsync(Containers, Bound);
        var settled = load.Acknowledged;
        Assert.True(await load.WaitForAsync(settled + 2_000, Bound), $"Writes did not continue after the rejoin: {load}");
        var rejoin = load.LongestStall(rejoinedAt);
        await load.StopAsync(Bound);
        await writer.DisposeAsync();

        await using var reader = ProcessTestClients.ForFaults(cluster.ControllerUri);
        var read = (await AckedLoad.ReadAllAsync(reader, "rejoin", "events")).Select(r => r.Value).ToList();
        Assert.Equal(read.Count, read.Distinct().Count());
        Assert.Empty(load.AcknowledgedEvents.Except(read));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"longest stall of a key: failover {failover.TotalSeconds:F2} s, rejoin {rejoin.TotalSeconds:F2} s ({load}, read back {read.Count})");

        // One recovery at a time: a container's move stalls only its own keys, for about one recovery.
        Assert.True(rejoin < TimeSpan.FromSeconds(5), $"Writes stalled {rejoin.TotalSeconds:F2} s while containers moved back to the rejoining store.");
    }

    private static async Task WaitForOwnedAsync(ClusterProcesses cluster, StreamsProcess store, int containers)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + Bound;
        var detail = string.Empty;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                detail = await http.GetStringAsync(new Uri($"http://127.0.0.1:{store.MetricsPort}/readyz"));
                if (detail.Contains($"running {containers}", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                detail = e.Message;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The rejoining store did not run {containers} containers: {detail}\n{cluster.Output()}");
    }

    /// <summary>
    /// One task per routing key, each writing its next event once the previous one is acknowledged, so the time between
    /// a key's acknowledgements is exactly how long its container kept it waiting. Bounded in count and time.
    /// </summary>
    private sealed class KeyedLoad
    {
        private readonly StallMeter _stalls = new(Keys);
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(3));
        private readonly ConcurrentDictionary<string, bool> _acknowledged = new();
        private readonly Task[] _writers;

        public KeyedLoad(EventStreamWriter<string> writer) =>
            _writers = Enumerable.Range(0, Keys).Select(k => Task.Run(() => WriteAsync(writer, k))).ToArray();

        public TimeSpan Now => _stalls.Now;

        public int Acknowledged => _acknowledged.Count;

        public IReadOnlySet<string> AcknowledgedEvents => _acknowledged.Keys.ToHashSet();

        public async Task<bool> WaitForAsync(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (Acknowledged < count && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            return Acknowledged >= count;
        }

        /// <summary>The longest any key waited for an acknowledgement in a wait that ended after <paramref name="since"/>.</summary>
        public TimeSpan LongestStall(TimeSpan since) => _stalls.LongestStall(since);

        public async Task StopAsync(TimeSpan timeout)
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_writers).WaitAsync(timeout);
        }

        public override string ToString() => $"acknowledged {Acknowledged}";

        private async Task WriteAsync(EventStreamWriter<string> writer, int k)
        {
            var key = "key-" + k.ToString(CultureInfo.InvariantCulture);
            for (var seq = 0; seq < 1_000_000 && !_stop.IsCancellationRequested; seq++)
            {
                var value = $"{key}:0:{seq}";
                try
                {
                    await writer.WriteEventAsync(key, value);
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }

                _acknowledged[value] = true;
                _stalls.Acknowledged(k);
            }
        }
    }
}
