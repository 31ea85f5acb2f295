using System.Collections.Concurrent;
using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Controller;
using Streams.Hosting;
using Streams.Ledger;
using Streams.SegmentStore;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Spans on an in-process standalone, recorded by a tracer set up as servers set theirs up
/// (<see cref="TelemetryPipeline.AddTracing"/>) that keeps spans in memory instead of exporting them: a client's trace
/// continues through the controller (Grpc.Net.Client sends traceparent), and container and ledger recovery, Tier 2
/// flushes, append sessions and reads are recorded. Other tests run meanwhile, so each test picks its spans by the
/// trace of an activity it started, or by the names of its own streams.
/// </summary>
public sealed class TracingTests
{
    private static readonly ActivitySource Test = new("Streams.Tests.Tracing");

    [Fact]
    public async Task A_client_call_continues_its_trace_through_the_controller_and_its_segment_calls()
    {
        using var spans = Spans.Record();
        await using var server = await TestServer.StartAsync();
        await using var client = server.CreateClient();
        await client.Streams.CreateScopeAsync("traced");

        ActivityTraceId trace;
        using (var operation = Test.StartActivity("create stream"))
        {
            trace = operation!.TraceId;
            await client.Streams.CreateStreamAsync("traced", "orders", StreamConfig.Fixed(2));
        }

        var sdk = await spans.WaitForAsync(s => s.TraceId == trace && s.Source.Name == StreamsClient.ActivitySourceName && s.OperationName == "CreateStream");
        var controller = await spans.WaitForAsync(s => s.TraceId == trace && s.Source.Name == ControllerTracing.SourceName && s.OperationName == "CreateStream");
        Assert.Equal("orders", controller.GetTagItem("streams.stream"));
        // Its parent is the gRPC server span, whose parent is the SDK's span (or the gRPC client span under it).
        await spans.WaitForAncestorAsync(controller, sdk);
        Assert.Equal(2, spans.Ended.Count(s => s.OperationName == "CreateSegment" && s.ParentSpanId == controller.SpanId));

        // Writer setup: the segment writer's endpoint lookup carries the trace to the controller too.
        using (var operation = Test.StartActivity("write"))
        {
            trace = operation!.TraceId;
            await using var writer = await client.CreateWriterAsync("traced", "orders", Serializers.Utf8);
            await writer.WriteEventAsync("key", "event");
        }

        var lookup = await spans.WaitForAsync(s => s.TraceId == trace && s.Source.Name == StreamsClient.ActivitySourceName && s.OperationName == "GetEndpoint");
        var served = await spans.WaitForAsync(s => s.TraceId == trace && s.Kind == ActivityKind.Server && spans.Descends(s, lookup));
        Assert.Contains("GetSegmentEndpoint", served.DisplayName, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recovery_tier2_flushes_append_sessions_and_reads_are_traced()
    {
        using var spans = Spans.Record();
        TestServer server;
        ActivityTraceId started;
        using (var start = Test.StartActivity("start"))
        {
            started = start!.TraceId;
            server = await TestServer.StartAsync(settings: new Dictionary<string, string?> { ["SegmentStore:Tier2FlushAge"] = "00:00:00.100" });
        }

        await using (server)
        {
            var recoveries = spans.Ended.Where(s => s.TraceId == started && s.Source.Name == SegmentStoreTracing.SourceName && s.OperationName == "RecoverContainer").ToList();
            Assert.NotEmpty(recoveries);
            Assert.Equal(recoveries.Count, recoveries.Select(s => s.GetTagItem("streams.container")).Distinct().Count());

            await using (var client = server.CreateClient())
            {
                await client.Streams.CreateScopeAsync("traced-store");
                await client.Streams.CreateStreamAsync("traced-store", "log", StreamConfig.Fixed(1));
                await using (var writer = await client.CreateWriterAsync("traced-store", "log", Serializers.Utf8))
                {
                    await Task.WhenAll(Enumerable.Range(0, 100).Select(i => writer.WriteEventAsync("key", "event " + i)));
                }

                await client.Streams.SealStreamAsync("traced-store", "log");
                var read = 0;
                await foreach (var _ in client.CreateReader("traced-store", "log", Serializers.Utf8).ReadAllAsync())
                {
                    read++;
                }

                Assert.Equal(100, read);
            }

            // One span per read request, one per chunk flushed, one per append session (it ends with the connection).
            await spans.WaitForAsync(s => s.OperationName == "Read" && IsOurs(s.GetTagItem("streams.segment")) && s.GetTagItem("streams.bytes") is long and > 0);
            await spans.WaitForAsync(s => s.OperationName == "FlushChunk" && IsOurs(s.GetTagItem("streams.segment")));
            var session = await spans.WaitForAsync(s => s.OperationName == "AppendSession" && s.Events.Any(e => e.Name == "setup" && IsOurs(e.Tags.FirstOrDefault(t => t.Key == "streams.segment").Value)));
            Assert.Equal(SegmentStoreTracing.SourceName, session.Source.Name);

            // A restart recovers the containers again, and with them the ledgers the previous run wrote.
            ActivityTraceId restarted;
            using (var restart = Test.StartActivity("restart"))
            {
                restarted = restart!.TraceId;
                await server.RestartAsync();
            }

            var ledger = spans.Ended.First(s => s.TraceId == restarted && s.Source.Name == LedgerTracing.SourceName && s.OperationName == "RecoverLedger");
            Assert.Contains(spans.Ended, s => s.SpanId == ledger.ParentSpanId && s.OperationName == "RecoverContainer");
        }

        static bool IsOurs(object? segment) => segment is string name && name.StartsWith("traced-store/log/", StringComparison.Ordinal);
    }

    /// <summary>A tracer provider as servers build it, keeping every span the process ends while it lives.</summary>
    private sealed class Spans : IDisposable
    {
        private readonly ConcurrentQueue<Activity> _ended = new();
        private readonly TracerProvider _provider;

        private Spans()
        {
            _provider = TelemetryPipeline.AddTracing(Sdk.CreateTracerProviderBuilder())
                .AddSource(Test.Name)
                .AddProcessor(new Collector(_ended))
                .Build();
        }

        public IReadOnlyList<Activity> Ended => [.. _ended];

        public static Spans Record() => new();

        /// <summary>The first span that matches, waiting (at most 20 s) for it to end.</summary>
        public async Task<Activity> WaitForAsync(Func<Activity, bool> match)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (true)
            {
                if (Ended.FirstOrDefault(match) is { } found)
                {
                    return found;
                }

                Assert.True(DateTime.UtcNow < deadline, $"No such span ended within 20 s; spans: {string.Join(", ", Ended.Select(s => $"{s.Source.Name}/{s.OperationName}"))}");
                await Task.Delay(50);
            }
        }

        /// <summary>Waits until the spans between them have ended and <paramref name="ancestor"/> is among the span's ancestors.</summary>
        public async Task WaitForAncestorAsync(Activity span, Activity ancestor) => await WaitForAsync(s => s == span && Descends(span, ancestor));

        /// <summary>Whether <paramref name="ancestor"/> is a parent, grandparent, ... of <paramref name="span"/> among the ended spans.</summary>
        public bool Descends(Activity span, Activity ancestor)
        {
            var byId = Ended.GroupBy(s => s.SpanId).ToDictionary(g => g.Key, g => g.First());
            for (var parent = span.ParentSpanId; parent != default; parent = byId.TryGetValue(parent, out var next) ? next.ParentSpanId : default)
            {
                if (parent == ancestor.SpanId)
                {
                    return true;
                }
            }

            return false;
        }

        public void Dispose() => _provider.Dispose();
    }

    private sealed class Collector(ConcurrentQueue<Activity> ended) : BaseProcessor<Activity>
    {
        public override void OnEnd(Activity data) => ended.Enqueue(data);
    }
}
