using System.Collections.Concurrent;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>
/// The durability proof: a real `streams standalone` is killed with SIGKILL while writers are mid-stream; after a
/// restart on the same data directory every acknowledged event is there, per-key order holds, nothing is duplicated,
/// and nothing that was never written appears.
/// </summary>
public sealed class DurabilityTests
{
    private const int Keys = 16;

    [Fact]
    public async Task Every_acknowledged_event_survives_SIGKILL_in_per_key_order()
    {
        using var dir = new TempDirectory("durability");
        var server = await StreamsProcess.StartStandaloneAsync(dir.Path);
        var (grpc, data, metrics) = (server.GrpcPort, server.DataPort, server.MetricsPort);
        var acknowledged = new ConcurrentDictionary<string, bool>();
        var attempted = new ConcurrentDictionary<string, bool>();
        try
        {
            await using (var client = Client(server.ControllerUri))
            {
                await client.Streams.CreateScopeAsync("durable");
                await client.Streams.CreateStreamAsync("durable", "events", StreamConfig.Fixed(4));
                await using var writer = await client.CreateWriterAsync("durable", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true });

                // Write from several tasks until SIGKILL; bounded in count and time.
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
                {
                    var pending = new List<Task>();
                    for (var seq = 0; seq < 200_000 && !stop.IsCancellationRequested; seq++)
                    {
                        var key = "key-" + ((w * 4) + (seq % 4)).ToString(CultureInfo.InvariantCulture);
                        var value = $"{key}:{w}:{seq}";
                        attempted[value] = true;
                        var write = writer.WriteEventAsync(key, value);
                        pending.Add(write.ContinueWith(t => { if (t.IsCompletedSuccessfully) { acknowledged[value] = true; } }, TaskScheduler.Default));
                        if (pending.Count >= 256)
                        {
                            await Task.WhenAll(pending);
                            pending.Clear();
                        }
                    }

                    await Task.WhenAll(pending);
                })).ToArray();

                // Kill once a good amount is acknowledged and writes are still flowing.
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (acknowledged.Count < 20_000 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(20);
                }

                server.Kill();
                stop.Cancel();
                await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60));
            }

            var acked = acknowledged.Keys.ToHashSet();
            Assert.True(acked.Count >= 1_000, $"Only {acked.Count} events were acknowledged before the kill.");
            Assert.True(acked.Count < attempted.Count, "The kill should have caught writes in flight.");

            await server.DisposeAsync();
            server = await StreamsProcess.StartStandaloneAsync(dir.Path, grpc, data, metrics);
            await using var reader = Client(server.ControllerUri);
            var read = new List<(string Value, string? Key, string Segment)>();
            await foreach (var e in reader.CreateReader("durable", "events", Serializers.Utf8).ReadAllAsync())
            {
                read.Add((e.Value, e.RoutingKey, e.Position.Segment));
            }

            var values = read.Select(r => r.Value).ToList();
            Assert.Equal(values.Count, values.Distinct().Count());
            Assert.DoesNotContain(values, v => !attempted.ContainsKey(v));
            var missing = acked.Except(values).ToList();
            Assert.True(missing.Count == 0, $"{missing.Count} acknowledged events were lost, e.g. {string.Join(", ", missing.Take(5))}");

            foreach (var key in read.GroupBy(r => r.Key))
            {
                Assert.Single(key.Select(r => r.Segment).Distinct());
                foreach (var writerEvents in key.GroupBy(r => r.Value.Split(':')[1]))
                {
                    var sequence = writerEvents.Select(r => int.Parse(r.Value.Split(':')[2], CultureInfo.InvariantCulture)).ToList();
                    Assert.Equal(sequence.Order(), sequence);
                }
            }

            TestContext.Current.TestOutputHelper?.WriteLine($"acknowledged {acked.Count}, attempted {attempted.Count}, read back {values.Count}");
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Server output:\n" + server.Output, e);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static StreamsClient Client(string uri) =>
        StreamsClient.Create(new StreamsClientOptions { ControllerUri = uri, ReconnectTimeout = TimeSpan.FromSeconds(3), ControlTimeout = TimeSpan.FromSeconds(5) });
}
