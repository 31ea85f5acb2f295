using Streams.Client;
using Streams.Client.Serialization;
using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>
/// A real Prometheus server scrapes a real `streams standalone` process every second: the event counter it stores
/// reaches the number of events the SDK wrote, and promtool accepts what /metrics serves.
/// </summary>
public sealed class PrometheusTests
{
    private const int Events = 500;

    [Fact]
    public async Task Prometheus_scrapes_the_standalone_and_counts_the_events_written()
    {
        using var dir = new TempDirectory("prometheus-standalone");
        await using var server = await StreamsProcess.StartStandaloneAsync(dir.Sub("data"));
        await using var prometheus = await PrometheusServer.StartAsync(server.MetricsPort);
        try
        {
            await using (var client = StreamsClient.Create(new StreamsClientOptions { ControllerUri = server.ControllerUri }))
            {
                await client.Streams.CreateScopeAsync("metrics");
                await client.Streams.CreateStreamAsync("metrics", "events", StreamConfig.Fixed(2));
                await using var writer = await client.CreateWriterAsync("metrics", "events", Serializers.Utf8);
                await Task.WhenAll(Enumerable.Range(0, Events).Select(i => writer.WriteEventAsync("key-" + (i % 8), "event " + i)));
            }

            var appended = await prometheus.WaitForAsync("sum(streams_segmentstore_appends_total{job=\"streams\"})", v => v >= Events, TimeSpan.FromSeconds(30));
            Assert.Equal(Events, appended);
            Assert.Equal(1, await prometheus.QueryAsync("up{job=\"streams\"}"));
            Assert.True(await prometheus.QueryAsync("sum(streams_segmentstore_log_write_duration_seconds_count)") > 0);

            var scrape = await PrometheusText.ScrapeAsync(server.MetricsPort);
            var (exitCode, output) = await PrometheusServer.CheckMetricsAsync(scrape);
            Assert.True(exitCode == 0, $"promtool check metrics failed ({exitCode}):\n{output}");
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Server output:\n" + server.Output, e);
        }
    }
}
