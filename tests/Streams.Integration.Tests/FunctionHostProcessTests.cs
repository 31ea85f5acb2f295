using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// The function host as users run it: the example function (examples/EnrichOrders) as separate processes over one
/// reader group of a real standalone, writing its results to another stream through the host's output writers.
/// </summary>
public sealed class FunctionHostProcessTests(StandaloneProcessFixture fixture, ITestOutputHelper output) : IClassFixture<StandaloneProcessFixture>
{
    private const int Events = 6000;

    [Fact]
    public async Task A_function_instance_SIGKILLed_mid_batch_and_restarted_leaves_exactly_one_output_per_input_event()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("fn", ct);
        await client.Streams.CreateStreamAsync("fn", "orders", StreamConfig.Fixed(4), ct);
        await client.Streams.CreateStreamAsync("fn", "enriched", StreamConfig.Fixed(2), ct);

        var ports = new Dictionary<string, int> { ["a"] = Ports.Free(), ["b"] = Ports.Free() };
        var instances = new Dictionary<string, StreamsProcess>();
        StreamsProcess Start(string id) => instances[id] = StreamsProcess.StartProgram(Repository.ExampleDll("EnrichOrders"),
        [
            $"--Function:Controller={fixture.Server.ControllerUri}", "--Function:Scope=fn", "--Function:Group=enrich", "--Function:Streams:0=fn/orders",
            $"--Function:InstanceId={id}", "--Function:HttpAddress=127.0.0.1", $"--Function:HttpPort={ports[id].ToString(CultureInfo.InvariantCulture)}",
            "--Function:BatchSize=50", "--Function:Concurrency=2", "--Function:HeartbeatInterval=00:00:00.500", "--Function:SessionTimeout=00:00:04",
            "--Function:DrainTimeout=00:00:10", "--Enrich:Output=fn/enriched",
        ]);
        Start("a");
        Start("b");
        try
        {
            await WaitUntilAsync(async () => await ReadyAsync(ports["a"]) && await ReadyAsync(ports["b"]), () => "both instances ready:\n" + Outputs(instances));

            // Orders arrive while the instances work: instance a dies with batches in progress, and comes back.
            await using var writer = await client.CreateWriterAsync("fn", "orders", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
            var writing = Task.Run(async () =>
            {
                for (var i = 0; i < Events; i += 50)
                {
                    await Task.WhenAll(Enumerable.Range(i, 50).Select(j => writer.WriteEventAsync("c" + (j % 20), $"o{j},c{j % 20},{j % 250}", ct)));
                    await Task.Delay(10, ct);
                }
            }, ct);
            await WaitUntilAsync(async () => await HandledAsync(ports["a"]) >= 1000, () => "instance a handles 1000 events:\n" + Outputs(instances));
            var handledByA = await HandledAsync(ports["a"]);
            instances["a"].Kill();
            output.WriteLine($"SIGKILL instance a after it committed {handledByA} events");
            Start("a");
            await writing;
            await client.Streams.SealStreamAsync("fn", "orders", ct);

            await WaitUntilAsync(async () => (await client.DescribeReaderGroupAsync("fn", "enrich", ct)).Ended, () => "the group reads everything:\n" + Outputs(instances));

            // SIGTERM, as a scale-down sends: both drain, leave and exit cleanly.
            foreach (var (id, instance) in instances)
            {
                Assert.True(await instance.TerminateAsync(TimeSpan.FromSeconds(30)) == 0, $"instance {id} did not exit cleanly:\n{instance.Output}");
            }
        }
        finally
        {
            foreach (var instance in instances.Values)
            {
                await instance.DisposeAsync();
            }
        }

        var results = new List<(string Value, string? Key, string Segment, long Offset)>();
        await foreach (var e in client.CreateReader("fn", "enriched", Serializers.Utf8).ReadAllAsync(ct))
        {
            results.Add((e.Value, e.RoutingKey, e.Position.Segment, e.Position.Offset));
        }

        // Exactly one result per order, whatever was handled twice.
        Assert.Equal(Events, results.Count);
        Assert.Equal(Enumerable.Range(0, Events), results.Select(r => OrderOf(r.Value)).Order());
        Assert.All(results, r => Assert.Equal(OrderOf(r.Value) % 250 >= 100 ? "large" : "small", r.Value.Split(',')[3]));

        // Each customer's results in the order of their orders.
        foreach (var key in results.GroupBy(r => r.Key))
        {
            var order = key.OrderBy(r => r.Offset).Select(r => OrderOf(r.Value)).ToList();
            Assert.Single(key.Select(r => r.Segment).Distinct());
            Assert.Equal(order.Order(), order);
        }
    }

    private static int OrderOf(string value) => int.Parse(value.AsSpan(1, value.IndexOf(',', StringComparison.Ordinal) - 1), CultureInfo.InvariantCulture);

    private static async Task<bool> ReadyAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            return (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"))).IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private static async Task<double> HandledAsync(int port)
    {
        try
        {
            return PrometheusText.Value(await PrometheusText.ScrapeAsync(port), "streams_function_events_total") ?? 0;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return 0;
        }
    }

    private static string Outputs(Dictionary<string, StreamsProcess> instances) =>
        string.Join("\n", instances.Select(i => $"== {i.Key}\n{(i.Value.Output.Length > 4000 ? i.Value.Output[^4000..] : i.Value.Output)}"));

    private static Task WaitUntilAsync(Func<Task<bool>> condition, Func<string> failure) =>
        Waiting.UntilAsync(condition, failure, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100));
}
