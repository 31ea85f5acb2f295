using System.Text.Json.Nodes;
using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>
/// charts/streams/ci/s3-external-zookeeper-values.yaml: an external ZooKeeper, Tier 2 on S3 with keys from an existing
/// Secret, a ServiceMonitor, and two ScaledObjects (a reader group's backlog, a stream's segments).
/// </summary>
public sealed class ClusterValuesTests
{
    private static readonly string File = Path.Combine(ChartTools.Chart, "ci", "s3-external-zookeeper-values.yaml");

    private static async Task<Rendering> RenderAsync() => await (await ChartTools.Instance).RenderAsync(File);

    [Fact]
    public async Task An_external_zookeeper_replaces_the_charts_own()
    {
        var chart = await RenderAsync();

        Assert.Equal(
            new Dictionary<string, int>
            {
                ["ServiceAccount"] = 1, ["ConfigMap"] = 1, ["Service"] = 3, ["StatefulSet"] = 2, ["Deployment"] = 1, ["PodDisruptionBudget"] = 3,
                ["ScaledObject"] = 2, ["ServiceMonitor"] = 1,
            },
            chart.Kinds);
        Assert.DoesNotContain(chart.Objects, o => ((string)o["metadata"]!["name"]!).Contains("zookeeper", StringComparison.Ordinal));
        foreach (var workload in chart.OfKind("StatefulSet").Concat(chart.OfKind("Deployment")))
        {
            var env = Rendering.Env(Rendering.Container(workload));
            Assert.Equal("zk-0.zk.infra:2181,zk-1.zk.infra:2181,zk-2.zk.infra:2181/streams-orders", env["STREAMS__ZOOKEEPER__CONNECT"]);
            Assert.Equal("00:00:06", env["STREAMS__ZOOKEEPER__SESSIONTIMEOUT"]);
        }
    }

    [Fact]
    public async Task Segment_stores_use_s3_with_the_keys_of_the_named_secret()
    {
        var chart = await RenderAsync();
        var store = Rendering.Container(chart.Get("StatefulSet", "orders-segmentstore"));

        Assert.Equal("s3://streams-tier2/orders?endpoint=http://minio.storage:9000&region=eu-west-1&pathStyle=true", Rendering.Env(store)["STREAMS__SEGMENTSTORE__TIER2"]);
        Assert.Equal(("streams-s3", "access-key"), Rendering.SecretEnv(store, "AWS_ACCESS_KEY_ID"));
        Assert.Equal(("streams-s3", "secret-key"), Rendering.SecretEnv(store, "AWS_SECRET_ACCESS_KEY"));
        Assert.Empty(chart.OfKind("Secret")); // the Secret is the user's
        Assert.Equal("1GiB", Rendering.Env(store)["STREAMS__SEGMENTSTORE__CACHESIZE"]);
        // Only segment stores talk to Tier 2.
        Assert.Null(Rendering.SecretEnv(Rendering.Container(chart.Get("StatefulSet", "orders-bookie")), "AWS_ACCESS_KEY_ID"));
        Assert.Null(Rendering.SecretEnv(Rendering.Container(chart.Get("Deployment", "orders-controller")), "AWS_ACCESS_KEY_ID"));
    }

    [Fact]
    public async Task Scaled_objects_point_keda_at_the_controller_service_with_the_triggers_metadata()
    {
        var chart = await RenderAsync();
        const string scaler = "orders-controller.streams-test.svc.cluster.local:9090";

        var backlog = chart.Get("ScaledObject", "billing-function");
        Assert.Equal("billing-function", (string)backlog["spec"]!["scaleTargetRef"]!["name"]!);
        Assert.Equal("Deployment", (string)backlog["spec"]!["scaleTargetRef"]!["kind"]!);
        Assert.Equal((0, 32, 15, 300), Limits(backlog));
        var trigger = backlog["spec"]!["triggers"]!.AsArray().Single()!;
        Assert.Equal("external", (string)trigger["type"]!);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["scalerAddress"] = scaler, ["metric"] = "unreadBytes", ["scope"] = "shop", ["readerGroup"] = "billing",
                ["targetBytesPerReplica"] = "134217728", ["activationUnreadBytes"] = "1048576",
            },
            Rendering.Labels(trigger["metadata"]));

        var segments = chart.Get("ScaledObject", "orders-segments");
        Assert.Equal("orders-function", (string)segments["spec"]!["scaleTargetRef"]!["name"]!);
        Assert.Equal((1, 10, 15, 60), Limits(segments));
        Assert.Equal(
            new Dictionary<string, string> { ["scalerAddress"] = scaler, ["scope"] = "shop", ["stream"] = "orders", ["segmentsPerReplica"] = "0.5" },
            Rendering.Labels(segments["spec"]!["triggers"]!.AsArray().Single()!["metadata"]));

        // The address is the controller Service's, on its gRPC port.
        var service = chart.Get("Service", "orders-controller");
        Assert.Contains(service["spec"]!["ports"]!.AsArray(), p => (string)p!["name"]! == "grpc" && (int)p["port"]! == 9090);
    }

    [Fact]
    public async Task The_service_monitor_scrapes_the_metrics_port_of_every_role_service()
    {
        var chart = await RenderAsync();
        var monitor = chart.Get("ServiceMonitor", "orders");

        Assert.Equal("prometheus", (string)monitor["metadata"]!["labels"]!["release"]!);
        var endpoint = monitor["spec"]!["endpoints"]!.AsArray().Single()!;
        Assert.Equal(("metrics", "/metrics", "15s"), ((string)endpoint["port"]!, (string)endpoint["path"]!, (string)endpoint["interval"]!));
        Assert.Equal(["streams-test"], monitor["spec"]!["namespaceSelector"]!["matchNames"]!.AsArray().Select(n => (string)n!));

        var labels = Rendering.Labels(monitor["spec"]!["selector"]!["matchLabels"]);
        var components = monitor["spec"]!["selector"]!["matchExpressions"]!.AsArray().Single()!["values"]!.AsArray().Select(v => (string)v!).ToHashSet();
        var scraped = chart.OfKind("Service")
            .Where(s =>
            {
                var l = Rendering.Labels(s["metadata"]!["labels"]);
                return labels.All(m => l.GetValueOrDefault(m.Key) == m.Value) && components.Contains(l["app.kubernetes.io/component"]);
            })
            .ToList();
        Assert.Equal(["orders-bookie", "orders-controller", "orders-segmentstore"], scraped.Select(s => (string)s["metadata"]!["name"]!).Order());
        Assert.All(scraped, s => Assert.Contains(s["spec"]!["ports"]!.AsArray(), p => (string)p!["name"]! == "metrics"));
    }

    [Fact]
    public async Task Role_values_reach_the_workloads()
    {
        var chart = await RenderAsync();

        var bookies = chart.Get("StatefulSet", "orders-bookie");
        Assert.Equal(4, (int)bookies["spec"]!["replicas"]!);
        var required = Rendering.PodSpec(bookies)["affinity"]!["podAntiAffinity"]!["requiredDuringSchedulingIgnoredDuringExecution"]!.AsArray().Single()!;
        Assert.Equal("kubernetes.io/hostname", (string)required["topologyKey"]!);
        var claim = bookies["spec"]!["volumeClaimTemplates"]!.AsArray().Single()!["spec"]!;
        Assert.Equal(("fast-ssd", "200Gi"), ((string)claim["storageClassName"]!, (string)claim["resources"]!["requests"]!["storage"]!));

        var controllers = chart.Get("Deployment", "orders-controller");
        Assert.Equal(3, (int)controllers["spec"]!["replicas"]!);
        Assert.Equal("16", Rendering.Env(Rendering.Container(controllers))["STREAMS__CLUSTER__CONTAINERCOUNT"]);
        var budget = chart.Get("PodDisruptionBudget", "orders-controller")["spec"]!.AsObject();
        Assert.Equal(1, (int)budget["maxUnavailable"]!);
        Assert.False(budget.ContainsKey("minAvailable"));

        var settings = chart.Get("ConfigMap", "orders-settings")["data"]!;
        Assert.Equal("00:00:10", (string)JsonNode.Parse((string)settings["segmentstore.json"]!)!["SegmentStore"]!["Tier2FlushAge"]!);
        Assert.Equal("00:00:30", (string)JsonNode.Parse((string)settings["bookie.json"]!)!["Bookie"]!["GcInterval"]!);
    }

    [Fact]
    public async Task Every_object_validates_against_the_kubernetes_and_crd_schemas_and_passes_yamllint()
    {
        var chart = await RenderAsync();

        var report = await ChartTools.ValidateAsync(chart.ManifestsJson);
        var (exit, output) = await ChartTools.YamllintAsync(chart.ManifestsYaml);

        Assert.Empty(report.Errors);
        Assert.Equal(14, report.Objects);
        Assert.Equal(1, report.Kinds["ServiceMonitor"]);
        Assert.Equal(2, report.Kinds["ScaledObject"]);
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task Notes_name_each_scaled_function_and_its_trigger()
    {
        var chart = await RenderAsync();

        // Any controller answers backlog triggers (a follower from the stored group record): no warning to run one.
        Assert.Contains("on unreadBytes of", chart.Notes);
        Assert.Contains("on segments of", chart.Notes);
        Assert.DoesNotContain("leading controller", chart.Notes);
    }

    private static (int Min, int Max, int Polling, int Cooldown) Limits(JsonObject scaled) =>
        ((int)scaled["spec"]!["minReplicaCount"]!, (int)scaled["spec"]!["maxReplicaCount"]!, (int)scaled["spec"]!["pollingInterval"]!, (int)scaled["spec"]!["cooldownPeriod"]!);
}
