using System.Globalization;
using Streams.Client;
using Streams.Client.ReaderGroups;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Common.Grpc;
using Streams.Contracts.ExternalScaler;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// Serverless readers scaled from zero and back, with this test playing KEDA's part as KEDA does it: every polling
/// interval it asks the controller's external scaler IsActive; an inactive target at zero replicas is activated to one
/// replica; while there are replicas, the HPA's rule for an AverageValue metric sets them to ceil(metric / target)
/// within [1, maxReplicaCount] (scale-downs held for a stabilization window); once IsActive has been false for the
/// cooldown period, the target goes back to zero. Replicas are real function-host processes (examples/EnrichOrders),
/// started and sent SIGTERM as a Deployment's pods are.
/// </summary>
public sealed class FunctionScalingTests(StandaloneProcessFixture fixture, ITestOutputHelper output) : IClassFixture<StandaloneProcessFixture>
{
    private const long TargetBytesPerReplica = 50_000;
    private const int MaxReplicas = 4;
    private static readonly TimeSpan PollingInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan CooldownPeriod = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Stabilization = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Functions_scale_from_zero_to_the_backlog_and_back_to_zero_twice_with_one_output_per_input()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("keda-fn", ct);
        await client.Streams.CreateStreamAsync("keda-fn", "orders", StreamConfig.Fixed(4), ct);
        await client.Streams.CreateStreamAsync("keda-fn", "enriched", StreamConfig.Fixed(2), ct);
        await client.CreateReaderGroupAsync("keda-fn", "enrich", ReaderGroupConfig.For("keda-fn/orders") with
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(500), SessionTimeout = TimeSpan.FromSeconds(4),
        }, ct);

        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var scaler = new ExternalScaler.ExternalScalerClient(channel);
        var scaledObject = new ScaledObjectRef
        {
            Name = "enrich", Namespace = "default",
            ScalerMetadata =
            {
                ["metric"] = "unreadBytes", ["scope"] = "keda-fn", ["readerGroup"] = "enrich",
                ["targetBytesPerReplica"] = TargetBytesPerReplica.ToString(CultureInfo.InvariantCulture),
            },
        };
        var spec = (await scaler.GetMetricSpecAsync(scaledObject, cancellationToken: ct)).MetricSpecs.Single();
        Assert.Equal(TargetBytesPerReplica, spec.TargetSizeFloat);

        await using var deployment = new FunctionDeployment(fixture.Server.ControllerUri);
        var history = new List<int> { 0 };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var keda = Task.Run(async () =>
        {
            var lastActive = DateTime.MinValue;
            var recent = new List<(DateTime At, int Desired)>();
            while (!stop.IsCancellationRequested)
            {
                var active = (await scaler.IsActiveAsync(scaledObject, cancellationToken: stop.Token)).Result;
                var now = DateTime.UtcNow;
                lastActive = active ? now : lastActive;
                var replicas = deployment.Replicas;
                if (replicas == 0 && active)
                {
                    replicas = 1; // activation
                }
                else if (replicas > 0 && !active && now - lastActive >= CooldownPeriod)
                {
                    replicas = 0; // cooldown: back to zero
                }
                else if (replicas > 0)
                {
                    var metric = (await scaler.GetMetricsAsync(new GetMetricsRequest { ScaledObjectRef = scaledObject, MetricName = spec.MetricName }, cancellationToken: stop.Token))
                        .MetricValues.Single().MetricValueFloat;
                    var desired = Math.Clamp((int)Math.Ceiling(metric / spec.TargetSizeFloat), 1, MaxReplicas);
                    recent.Add((now, desired));
                    recent.RemoveAll(r => now - r.At > Stabilization);
                    // Up at once; down only to the highest recommendation of the stabilization window.
                    replicas = desired >= replicas ? desired : Math.Max(desired, recent.Max(r => r.Desired));
                }

                if (replicas != deployment.Replicas)
                {
                    await deployment.ScaleAsync(replicas);
                    lock (history)
                    {
                        history.Add(replicas);
                    }

                    output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} replicas -> {replicas}");
                }

                await Task.Delay(PollingInterval, stop.Token);
            }
        }, ct);

        try
        {
            await using var writer = await client.CreateWriterAsync("keda-fn", "orders", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
            for (var burst = 0; burst < 2; burst++)
            {
                // Idle: nothing to read, no replicas.
                await Task.Delay(CooldownPeriod, ct);
                Assert.Equal(0, deployment.Replicas);
                var seen = History(history).Count;

                // A burst of orders: the backlog scales the function out, it drains it, and scales back to zero.
                var from = burst * 10_000;
                await Task.WhenAll(Enumerable.Range(from, 10_000).Select(i => writer.WriteEventAsync("c" + (i % 40), $"o{i},c{i % 40},{i % 250}," + new string('x', 60), ct)));
                await Waiting.UntilAsync(() => History(history) is var h && h.Count > seen + 1 && h[^1] == 0, () => $"burst {burst}: scaled out and back to zero: {string.Join(" -> ", History(history))}\n{deployment.Outputs()}",
                    TimeSpan.FromSeconds(90), TimeSpan.FromMilliseconds(200), ct);
                var thisBurst = History(history).Skip(seen).ToList();
                output.WriteLine($"burst {burst}: {string.Join(" -> ", thisBurst)}");
                Assert.Equal(0, thisBurst[^1]);
                Assert.True(thisBurst.Max() > 1, $"The backlog never scaled the function beyond one replica: {string.Join(" -> ", thisBurst)}");
                Assert.True(thisBurst.Max() <= MaxReplicas);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await keda.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        Assert.True(deployment.CleanExits, "A replica sent SIGTERM did not exit cleanly:\n" + deployment.Outputs());
        var results = new List<string>();
        var sealing = client.Streams.SealStreamAsync("keda-fn", "enriched", ct);
        await sealing;
        await foreach (var e in client.CreateReader("keda-fn", "enriched", Serializers.Utf8).ReadAllAsync(ct))
        {
            results.Add(e.Value);
        }

        Assert.Equal(Enumerable.Range(0, 20_000), results.Select(v => int.Parse(v.AsSpan(1, v.IndexOf(',', StringComparison.Ordinal) - 1), CultureInfo.InvariantCulture)).Order());
    }

    private static List<int> History(List<int> history)
    {
        lock (history)
        {
            return [.. history];
        }
    }

    /// <summary>A Deployment of the example function: pods are processes with unique names, scaled down by SIGTERM (newest first).</summary>
    private sealed class FunctionDeployment(string controllerUri) : IAsyncDisposable
    {
        private readonly List<StreamsProcess> _pods = [];
        private readonly List<StreamsProcess> _gone = [];
        private int _next;

        public int Replicas => _pods.Count;

        public bool CleanExits { get; private set; } = true;

        public async Task ScaleAsync(int replicas)
        {
            while (_pods.Count < replicas)
            {
                var name = $"enrich-{_next++}";
                _pods.Add(StreamsProcess.StartProgram(Repository.ExampleDll("EnrichOrders"),
                [
                    $"--Function:Controller={controllerUri}", "--Function:Scope=keda-fn", "--Function:Group=enrich", "--Function:Streams:0=keda-fn/orders",
                    $"--Function:InstanceId={name}", "--Function:HttpAddress=127.0.0.1", $"--Function:HttpPort={Ports.Free().ToString(CultureInfo.InvariantCulture)}",
                    "--Function:HeartbeatInterval=00:00:00.500", "--Function:SessionTimeout=00:00:04", "--Function:DrainTimeout=00:00:05",
                    // Slow enough that one replica cannot drain a burst before the HPA sees it.
                    "--Function:RateLimit=2000",
                    "--Enrich:Output=keda-fn/enriched",
                ]));
            }

            var stopping = new List<StreamsProcess>();
            while (_pods.Count > replicas)
            {
                stopping.Add(_pods[^1]);
                _pods.RemoveAt(_pods.Count - 1);
            }

            foreach (var exit in await Task.WhenAll(stopping.Select(p => p.TerminateAsync(TimeSpan.FromSeconds(20)))))
            {
                CleanExits &= exit == 0;
            }

            _gone.AddRange(stopping);
        }

        public string Outputs() =>
            string.Join("\n", _pods.Concat(_gone).Select(p => p.Output.Length > 2000 ? p.Output[^2000..] : p.Output));

        public async ValueTask DisposeAsync()
        {
            foreach (var pod in _pods.Concat(_gone))
            {
                await pod.DisposeAsync();
            }
        }
    }
}
