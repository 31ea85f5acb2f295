using System.Diagnostics;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A writer under continuous load across splits and merges of its stream in a dev cluster (2 segment stores, 3 bookies
/// E3/Qw3/Qa2), with a segment store SIGKILLed in the middle of a scale: every acknowledged event is read exactly once,
/// each key's events in order.
/// </summary>
public sealed class ScaleFaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Writes_across_four_scales_with_a_segment_store_killed_during_one_are_read_exactly_once_in_key_order()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 2, quorums: (3, 3, 2), containers: 4, controllers: 2);
        await cluster.RunAsync(async c =>
        {
            await using var client = ProcessTestClients.ForFaults(c.ControllerUri);
            await client.Streams.CreateScopeAsync("scale");
            // A target far above the load: only the test's manual scales change the stream.
            await client.Streams.CreateStreamAsync("scale", "events", new StreamConfig { Scaling = ScalingPolicy.ByEventRate(1_000_000, minSegments: 1, maxSegments: 16) });
            await using var writer = await client.CreateWriterAsync("scale", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true, WriterId = Guid.NewGuid() });
            var load = PacedLoad.Start(writer, 1500, keys: 64);

            await ScaleAsync(client, "split the only segment in two", d => Split(d, 0));
            await ScaleAsync(client, "split the upper half in two", d => Split(d, d.ActiveSegments.Count - 1));

            // The third scale runs through a failover: a segment store is SIGKILLed as it starts, so its steps (creating,
            // sealing, copying writer records) meet containers that are moving to the other store.
            var victim = c.SegmentStores[0];
            output.WriteLine($"SIGKILL segment store pid {victim.Pid} as a scale starts");
            victim.Kill();
            await ScaleAsync(client, "merge the two upper quarters", d => Merge(d, d.ActiveSegments.Count - 2)).WaitAsync(TimeSpan.FromSeconds(60));
            await c.RestartSegmentStoreAsync(0);

            await ScaleAsync(client, "merge back to one segment", d => Merge(d, 0));
            var acknowledgedBefore = load.Acknowledged;
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.True(load.Acknowledged > acknowledgedBefore, "Writes did not resume after the last scale");
            await load.StopAsync(TimeSpan.FromSeconds(60));

            var described = await client.Streams.DescribeStreamAsync("scale", "events");
            output.WriteLine($"epoch {described.Epoch}, {load.Acknowledged} acknowledged, {load.Failed} failed, longest write stall {load.LongestStall.TotalSeconds:F2} s");
            Assert.True(described.History.Count >= 4, $"Expected 4 scale events, saw {described.History.Count}");
            Assert.True(load.Failed == 0, $"Writes failed: {load}");

            await client.Streams.SealStreamAsync("scale", "events");
            var read = new List<(string Value, string? Key)>();
            var positions = new Dictionary<string, string>();
            await foreach (var e in client.CreateReader("scale", "events", Serializers.Utf8).ReadAllAsync())
            {
                read.Add((e.Value, e.RoutingKey));
                positions[e.Value] = $"{e.Position.Segment}:{e.Position.Offset}";
            }

            load.Verify(read, positions);
        }, TimeSpan.FromMinutes(4));

        async Task ScaleAsync(StreamsClient client, string what, Func<StreamDescription, (IReadOnlyList<long> Seal, IReadOnlyList<(double Start, double End)> Ranges)> plan)
        {
            var described = await client.Streams.DescribeStreamAsync("scale", "events");
            var (seal, ranges) = plan(described);
            var timer = Stopwatch.StartNew();
            var after = await client.Streams.ScaleStreamAsync("scale", "events", seal, ranges);
            output.WriteLine($"{what}: epoch {described.Epoch} -> {after.Epoch} in {timer.ElapsedMilliseconds} ms");
            Assert.Equal(described.Epoch + 1, after.Epoch);
        }
    }

    private static (IReadOnlyList<long>, IReadOnlyList<(double, double)>) Split(StreamDescription d, int index)
    {
        var s = d.ActiveSegments.OrderBy(x => x.KeyStart).ElementAt(index);
        var middle = (s.KeyStart + s.KeyEnd) / 2;
        return ([s.Id], [(s.KeyStart, middle), (middle, s.KeyEnd)]);
    }

    private static (IReadOnlyList<long>, IReadOnlyList<(double, double)>) Merge(StreamDescription d, int index)
    {
        var sorted = d.ActiveSegments.OrderBy(x => x.KeyStart).ToList();
        var (a, b) = (sorted[index], sorted[index + 1]);
        return ([a.Id, b.Id], [(a.KeyStart, b.KeyEnd)]);
    }
}
