using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Functions;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// The function host's rules, with handlers of the test's own in this process, against a real standalone: batches
/// from one segment in order and bounded in size, bounded concurrency, retries then the dead-letter stream for the
/// events that keep failing (and only those), and effectively-once output through the retries.
/// </summary>
public sealed class FunctionHostTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    [Fact]
    public async Task Batches_are_per_segment_in_order_and_the_events_that_keep_failing_go_to_the_dead_letter_stream_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("fnhost", ct);
        await client.Streams.CreateStreamAsync("fnhost", "in", StreamConfig.Fixed(6), ct);
        await client.Streams.CreateStreamAsync("fnhost", "out", StreamConfig.Fixed(2), ct);
        await client.Streams.CreateStreamAsync("fnhost", "dead", StreamConfig.Fixed(1), ct);
        await using (var writer = await client.CreateWriterAsync("fnhost", "in", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            await Task.WhenAll(Enumerable.Range(0, 3000).Select(i => writer.WriteEventAsync("k" + (i % 30), i % 100 == 7 ? $"{i}:poison" : $"{i}:ok", ct)));
        }

        await client.Streams.SealStreamAsync("fnhost", "in", ct);

        var recorder = new Recorder();
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(recorder);
        builder.AddStreamsFunction<FlakyHandler, string>(Serializers.Utf8, o =>
        {
            o.Controller = fixture.Server.ControllerUri;
            o.Scope = "fnhost";
            o.Group = "flaky";
            o.Streams = ["fnhost/in"];
            o.BatchSize = 40;
            o.Concurrency = 3;
            o.MaxAttempts = 3;
            o.InitialBackoff = TimeSpan.FromMilliseconds(5);
            o.MaxBackoff = TimeSpan.FromMilliseconds(20);
            o.DeadLetterStream = "fnhost/dead";
            o.HttpAddress = "127.0.0.1";
            o.HttpPort = Ports.Free();
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(500);
            o.SessionTimeout = TimeSpan.FromSeconds(5);
        });
        await using var app = builder.Build();
        app.MapStreamsFunctionEndpoints();
        await app.StartAsync(ct);
        var state = app.Services.GetRequiredService<FunctionState>();
        await Waiting.UntilAsync(() => state.Ended || state.Failure is not null, "the group is read", TimeSpan.FromSeconds(60), cancellationToken: ct);
        var metrics = await PrometheusText.ScrapeAsync(app.Services.GetRequiredService<FunctionOptions>().HttpPort, ct);
        await app.StopAsync(ct);
        Assert.Null(state.Failure);

        // Batches: one segment each, in order, at most 40 events, at most 3 segments at once.
        Assert.All(recorder.Batches, b => Assert.InRange(b.Offsets.Count, 1, 40));
        foreach (var segment in recorder.Batches.Where(b => b.Attempt == 1 && b.Offsets.Count > 1).GroupBy(b => b.Segment))
        {
            var offsets = segment.SelectMany(b => b.Offsets).ToList();
            Assert.Equal(offsets.Order(), offsets);
        }

        Assert.InRange(recorder.MostAtOnce, 1, 3);

        // The 30 poison events, and only they, are dead-lettered, once each; the others are in the output once each.
        var dead = await ReadAsync(client, "dead", ct);
        Assert.Equal(Enumerable.Range(0, 3000).Where(i => i % 100 == 7).Select(i => $"{i}:poison"), dead.Order(StringComparer.Ordinal).OrderBy(v => int.Parse(v.Split(':')[0], CultureInfo.InvariantCulture)));
        var written = await ReadAsync(client, "out", ct);
        Assert.Equal(Enumerable.Range(0, 3000).Where(i => i % 100 != 7).Select(i => $"{i}:done"), written.OrderBy(v => int.Parse(v.Split(':')[0], CultureInfo.InvariantCulture)));
        Assert.Equal(30, PrometheusText.Value(metrics, "streams_function_dead_lettered_total"));
        Assert.Equal(3000, PrometheusText.Value(metrics, "streams_function_events_total"));
        Assert.True(PrometheusText.Value(metrics, "streams_function_failures_total") >= 30 * 3);
    }

    private static async Task<List<string>> ReadAsync(StreamsClient client, string stream, CancellationToken ct)
    {
        var values = new List<string>();
        await foreach (var e in client.CreateReader("fnhost", stream, Serializers.Utf8).ReadAllAsync(ct))
        {
            values.Add(e.Value);
        }

        return values;
    }

    /// <summary>What the handler saw: each batch (segment, attempt, offsets), and the most batches in progress at once.</summary>
    public sealed class Recorder
    {
        private int _now;
        private int _most;

        public ConcurrentQueue<(string Segment, int Attempt, List<long> Offsets)> Batches { get; } = new();

        public int MostAtOnce => Volatile.Read(ref _most);

        public IDisposable Enter()
        {
            var now = Interlocked.Increment(ref _now);
            for (var most = Volatile.Read(ref _most); now > most; most = Volatile.Read(ref _most))
            {
                Interlocked.CompareExchange(ref _most, now, most);
            }

            return new Exit(this);
        }

        private sealed class Exit(Recorder recorder) : IDisposable
        {
            public void Dispose() => Interlocked.Decrement(ref recorder._now);
        }
    }

    /// <summary>Writes "N:done" for every "N:ok" event (before failing, so retries re-write outputs) and throws on a poison one.</summary>
    public sealed class FlakyHandler(Recorder recorder) : IStreamFunction<string>
    {
        public async Task HandleAsync(FunctionBatch<string> batch, CancellationToken cancellationToken)
        {
            using var _ = recorder.Enter();
            recorder.Batches.Enqueue((batch.Segment, batch.Attempt, [.. batch.Events.Select(e => e.Position.Offset)]));
            var output = batch.Output("fnhost/out", Serializers.Utf8);
            foreach (var e in batch.Events)
            {
                if (e.Value.EndsWith(":poison", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException("poison: " + e.Value);
                }

                await output.WriteAsync(e, e.RoutingKey, e.Value.Replace(":ok", ":done", StringComparison.Ordinal), cancellationToken);
                await Task.Yield();
            }
        }
    }
}
