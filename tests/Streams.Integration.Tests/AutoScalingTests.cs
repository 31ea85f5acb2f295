using System.Diagnostics;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Autoscaling on a real `streams standalone` with short windows (1, 2, 4 and 8 s instead of 2, 5, 10 and 20 minutes):
/// a load step splits, a steady load below target never scales, an idle stream merges back to its minimum, and a hot
/// key is reported rather than split. Each test has its own process, so their clocks do not interfere.
/// </summary>
public sealed class AutoScalingTests(ITestOutputHelper output)
{
    /// <summary>Target rate per segment in the tests, events per second.</summary>
    private const int Target = 100;

    private static readonly Dictionary<string, string> ShortWindows = new()
    {
        ["STREAMS__Scaling__TickMs"] = "250",
        ["STREAMS__Scaling__WindowsMs"] = "1000,2000,4000,8000",
        ["STREAMS__Scaling__ReportIntervalMs"] = "1000",
        ["STREAMS__Scaling__EvaluateIntervalMs"] = "500",
        ["STREAMS__Scaling__SplitCooldownMs"] = "3000",
        ["STREAMS__Scaling__MergeCooldownMs"] = "4000",
    };

    [Fact]
    public Task A_load_step_to_five_times_the_target_splits_within_the_window() =>
        WithStandaloneAsync(async client =>
        {
            var writer = await CreateAsync(client, "step", ScalingPolicy.ByEventRate(Target, scaleFactor: 2, minSegments: 1, maxSegments: 8));
            // Just under the target (exactly at it, noise alone can cross the 10-minute trigger), for longer than the
            // windows: nothing splits until the step.
            var load = PacedLoad.Start(writer, 0.9 * Target);
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.Equal(0, (await client.Streams.DescribeStreamAsync("step", "events")).Epoch);

            var stepped = Stopwatch.StartNew();
            load.Rate = 5 * Target;
            var split = await WaitForAsync(client, "step", d => d.ActiveSegments.Count > 1, TimeSpan.FromSeconds(20));
            output.WriteLine($"split {stepped.Elapsed.TotalSeconds:F1} s after the step: {split.ActiveSegments.Count} segments, {split.History.Last().Reason}");
            Assert.True(split.ActiveSegments.Count > 1, $"No split 20 s after a 5x step; history: {Describe(split)}");

            await load.StopAsync(TimeSpan.FromSeconds(30));
            load.Verify(await ReadAllAsync(client, "step"));
        });

    [Fact]
    public Task A_steady_load_below_the_target_never_scales() =>
        WithStandaloneAsync(async client =>
        {
            var writer = await CreateAsync(client, "steady", ScalingPolicy.ByEventRate(Target, scaleFactor: 2, minSegments: 1, maxSegments: 8));
            var load = PacedLoad.Start(writer, 0.7 * Target);
            // 15 s is 30 evaluation intervals, and almost twice the longest window.
            await Task.Delay(TimeSpan.FromSeconds(15));
            var described = await client.Streams.DescribeStreamAsync("steady", "events");
            await load.StopAsync(TimeSpan.FromSeconds(30));
            Assert.True(load.Acknowledged > 900, $"The load did not run: {load.Acknowledged} acknowledged");
            Assert.True(described.History.Count == 0 && described.Epoch == 0, $"A steady 0.7x load scaled: {Describe(described)}");
        });

    [Fact]
    public Task When_the_load_stops_segments_merge_back_to_the_minimum() =>
        WithStandaloneAsync(async client =>
        {
            var writer = await CreateAsync(client, "idle", ScalingPolicy.ByEventRate(Target, scaleFactor: 4, minSegments: 1, maxSegments: 8));
            var load = PacedLoad.Start(writer, 8 * Target);
            var split = await WaitForAsync(client, "idle", d => d.ActiveSegments.Count >= 3, TimeSpan.FromSeconds(30));
            Assert.True(split.ActiveSegments.Count >= 3, $"The 8x load did not split into 3 or more: {Describe(split)}");

            load.Rate = 0;
            var stopped = Stopwatch.StartNew();
            var merged = await WaitForAsync(client, "idle", d => d.ActiveSegments.Count == 1, TimeSpan.FromSeconds(90));
            output.WriteLine($"merged back to 1 segment {stopped.Elapsed.TotalSeconds:F1} s after the load stopped: {Describe(merged)}");
            Assert.True(merged.ActiveSegments.Count == 1, $"Segments did not merge back to 1: {Describe(merged)}");
            Assert.Contains(merged.History, e => e.Reason.Contains("merge", StringComparison.OrdinalIgnoreCase));

            await load.StopAsync(TimeSpan.FromSeconds(30));
            load.Verify(await ReadAllAsync(client, "idle"));
        });

    [Fact]
    public Task A_hot_key_carrying_all_the_load_is_reported_and_not_split() =>
        WithStandaloneAsync(async client =>
        {
            var writer = await CreateAsync(client, "hot", ScalingPolicy.ByEventRate(Target, scaleFactor: 2, minSegments: 1, maxSegments: 8));
            var load = PacedLoad.StartOneKey(writer, 6 * Target);
            var reported = await WaitForAsync(client, "hot", d => d.HotKeys.Count > 0, TimeSpan.FromSeconds(30));
            // Keep the load past several evaluations: the stream must still not split.
            await Task.Delay(TimeSpan.FromSeconds(5));
            var described = await client.Streams.DescribeStreamAsync("hot", "events");
            await load.StopAsync(TimeSpan.FromSeconds(30));
            Assert.True(reported.HotKeys.Count > 0, $"No hot key reported: {Describe(reported)}");
            Assert.True(described.Epoch == 0 && described.ActiveSegments.Count == 1, $"A single hot key was split: {Describe(described)}");
        });

    private async Task WithStandaloneAsync(Func<StreamsClient, Task> test)
    {
        using var dir = new TempDirectory("autoscaling");
        await using var server = await StreamsProcess.RetryOnPortClashAsync(() =>
            StreamsProcess.StartServerAsync(["standalone", "--data-dir", dir.Path], Ports.Free(), Ports.Free(), Ports.Free(), ShortWindows));
        await using var client = ProcessTestClients.Create(server.ControllerUri);
        try
        {
            await test(client).WaitAsync(TimeSpan.FromMinutes(3));
        }
        catch
        {
            output.WriteLine(server.Output);
            throw;
        }
    }

    private static async Task<EventStreamWriter<string>> CreateAsync(StreamsClient client, string scope, ScalingPolicy policy)
    {
        await client.Streams.CreateScopeAsync(scope);
        await client.Streams.CreateStreamAsync(scope, "events", new StreamConfig { Scaling = policy });
        return await client.CreateWriterAsync(scope, "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true });
    }

    private static async Task<StreamDescription> WaitForAsync(StreamsClient client, string scope, Func<StreamDescription, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var described = await client.Streams.DescribeStreamAsync(scope, "events");
            if (done(described) || DateTime.UtcNow > deadline)
            {
                return described;
            }

            await Task.Delay(200);
        }
    }

    private static async Task<List<(string Value, string? Key)>> ReadAllAsync(StreamsClient client, string scope)
    {
        await client.Streams.SealStreamAsync(scope, "events");
        var read = new List<(string Value, string? Key)>();
        await foreach (var e in client.CreateReader(scope, "events", Serializers.Utf8).ReadAllAsync())
        {
            read.Add((e.Value, e.RoutingKey));
        }

        return read;
    }

    private static string Describe(StreamDescription d) =>
        $"epoch {d.Epoch}, {d.ActiveSegments.Count} segments, history [{string.Join("; ", d.History.Select(h => $"{h.Epoch}: {h.Reason}"))}], hot keys {d.HotKeys.Count}";
}
