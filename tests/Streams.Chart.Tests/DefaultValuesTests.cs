using System.Text.Json.Nodes;
using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>charts/streams with its own values.yaml only: what `helm install streams charts/streams` would create.</summary>
public sealed class DefaultValuesTests
{
    private static async Task<Rendering> RenderAsync() => await (await ChartTools.Instance).RenderAsync();

    [Fact]
    public async Task Default_values_render_zookeeper_bookies_segment_stores_and_two_controllers()
    {
        var chart = await RenderAsync();

        Assert.Equal(
            new Dictionary<string, int> { ["ServiceAccount"] = 1, ["ConfigMap"] = 1, ["Service"] = 5, ["StatefulSet"] = 3, ["Deployment"] = 1, ["PodDisruptionBudget"] = 4 },
            chart.Kinds);
        Assert.Equal(3, (int)chart.Get("StatefulSet", "streams-zookeeper")["spec"]!["replicas"]!);
        Assert.Equal(3, (int)chart.Get("StatefulSet", "streams-bookie")["spec"]!["replicas"]!);
        Assert.Equal(2, (int)chart.Get("StatefulSet", "streams-segmentstore")["spec"]!["replicas"]!);
        Assert.Equal(2, (int)chart.Get("Deployment", "streams-controller")["spec"]!["replicas"]!);
        Assert.Empty(chart.OfKind("Secret"));
        Assert.Empty(chart.OfKind("ScaledObject"));
        Assert.Empty(chart.OfKind("ServiceMonitor"));
        Assert.All(chart.Objects, o => Assert.Equal("streams", (string)o["metadata"]!["labels"]!["app.kubernetes.io/instance"]!));
    }

    [Fact]
    public async Task Every_object_validates_against_the_kubernetes_schemas()
    {
        var chart = await RenderAsync();

        var report = await ChartTools.ValidateAsync(chart.ManifestsJson);

        Assert.Empty(report.Errors);
        Assert.Equal(0, report.Exit);
        Assert.Equal(15, report.Objects);
        Assert.Equal(chart.Kinds, report.Kinds);
    }

    [Fact]
    public async Task The_rendered_manifests_the_values_and_the_chart_file_pass_yamllint()
    {
        var chart = await RenderAsync();

        var (exit, output) = await ChartTools.YamllintAsync(
            chart.ManifestsYaml, Path.Combine(ChartTools.Chart, "values.yaml"), Path.Combine(ChartTools.Chart, "Chart.yaml"),
            Path.Combine(ChartTools.Chart, "ci"));

        Assert.True(exit == 0, output);
    }

    [Theory]
    [InlineData("streams-bookie", "journal", "50Gi")]
    [InlineData("streams-segmentstore", "data", "1Gi")]
    [InlineData("streams-zookeeper", "data", "8Gi")]
    public async Task Stateful_roles_keep_their_data_on_a_claim_per_pod_and_prefer_one_pod_per_node(string name, string volume, string size)
    {
        var chart = await RenderAsync();
        var set = chart.Get("StatefulSet", name);

        var claim = set["spec"]!["volumeClaimTemplates"]!.AsArray().Single()!;
        Assert.Equal(volume, (string)claim["metadata"]!["name"]!);
        Assert.Equal(size, (string)claim["spec"]!["resources"]!["requests"]!["storage"]!);
        Assert.Null(claim["spec"]!["storageClassName"]); // the cluster's default class
        Assert.Contains(Rendering.Container(set)["volumeMounts"]!.AsArray(), m => (string)m!["name"]! == volume);
        Assert.Equal("Parallel", (string)set["spec"]!["podManagementPolicy"]!);

        var preferred = Rendering.PodSpec(set)["affinity"]!["podAntiAffinity"]!["preferredDuringSchedulingIgnoredDuringExecution"]!.AsArray().Single()!;
        Assert.Equal("kubernetes.io/hostname", (string)preferred["podAffinityTerm"]!["topologyKey"]!);
        Assert.Equal(
            Rendering.Labels(set["spec"]!["selector"]!["matchLabels"]),
            Rendering.Labels(preferred["podAffinityTerm"]!["labelSelector"]!["matchLabels"]));
    }

    [Theory]
    [InlineData("StatefulSet", "streams-zookeeper", "maxUnavailable", 1)]
    [InlineData("StatefulSet", "streams-bookie", "maxUnavailable", 1)]
    [InlineData("StatefulSet", "streams-segmentstore", "maxUnavailable", 1)]
    [InlineData("Deployment", "streams-controller", "minAvailable", 1)]
    public async Task Each_role_has_a_disruption_budget_over_exactly_its_pods(string kind, string name, string limit, int value)
    {
        var chart = await RenderAsync();
        var workload = chart.Get(kind, name);

        var budget = chart.Get("PodDisruptionBudget", name);

        Assert.Equal(value, (int)budget["spec"]![limit]!);
        var selector = Rendering.Labels(budget["spec"]!["selector"]!["matchLabels"]);
        Assert.Equal(Rendering.Labels(workload["spec"]!["selector"]!["matchLabels"]), selector);
        Assert.Single(Workloads(chart), w => Matches(selector, Rendering.Labels(w["spec"]!["template"]!["metadata"]!["labels"])));
    }

    [Fact]
    public async Task Every_service_selects_the_pods_of_one_workload_and_targets_ports_they_declare()
    {
        var chart = await RenderAsync();

        foreach (var service in chart.OfKind("Service"))
        {
            var selector = Rendering.Labels(service["spec"]!["selector"]);
            var workload = Assert.Single(Workloads(chart), w => Matches(selector, Rendering.Labels(w["spec"]!["template"]!["metadata"]!["labels"])));
            var declared = Rendering.Container(workload)["ports"]!.AsArray().Select(p => (string)p!["name"]!).ToHashSet();
            Assert.All(service["spec"]!["ports"]!.AsArray(), p => Assert.Contains((string)p!["targetPort"]!, declared));
        }

        // A StatefulSet's pods get their DNS names from the headless service it names.
        foreach (var set in chart.OfKind("StatefulSet"))
        {
            var service = chart.Get("Service", (string)set["spec"]!["serviceName"]!);
            Assert.Equal("None", (string)service["spec"]!["clusterIP"]!);
            Assert.True((bool)service["spec"]!["publishNotReadyAddresses"]!);
        }

        Assert.Equal("ClusterIP", (string)chart.Get("Service", "streams-controller")["spec"]!["type"]!);
    }

    [Theory]
    [InlineData("StatefulSet", "streams-bookie", "bookie", 3182, 3181, 3183)]
    [InlineData("StatefulSet", "streams-segmentstore", "segmentstore", 9100, 9101, 9102)]
    [InlineData("Deployment", "streams-controller", "controller", 9090, null, 9092)]
    public async Task Each_role_runs_its_command_on_its_ports_with_health_probes(string kind, string name, string command, int grpc, int? data, int metrics)
    {
        var chart = await RenderAsync();
        var container = Rendering.Container(chart.Get(kind, name));

        Assert.Equal([command, "--log-level", "Information", "--config", $"/etc/streams/{command}.json"], container["args"]!.AsArray().Select(a => (string)a!));
        Assert.Equal("streams:0.1.0", (string)container["image"]!);
        var ports = container["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (int)p!["containerPort"]!);
        Assert.Equal(data is null ? new() { ["grpc"] = grpc, ["metrics"] = metrics } : new Dictionary<string, int> { ["grpc"] = grpc, ["data"] = data.Value, ["metrics"] = metrics }, ports);
        var env = Rendering.Env(container);
        Assert.Equal(grpc.ToString(), env["STREAMS__SERVER__GRPCPORT"]);
        Assert.Equal(metrics.ToString(), env["STREAMS__SERVER__METRICSPORT"]);
        Assert.Equal(data?.ToString(), env.GetValueOrDefault("STREAMS__SERVER__DATAPORT"));
        Assert.Equal("0.0.0.0", env["STREAMS__SERVER__HOST"]);

        // Liveness: the process answers /healthz; readiness: the gRPC health service's overall status (every
        // readiness check of the role); the startup probe holds liveness off while the role connects and recovers.
        Assert.Equal("/healthz", (string)container["startupProbe"]!["httpGet"]!["path"]!);
        Assert.Equal("metrics", (string)container["startupProbe"]!["httpGet"]!["port"]!);
        Assert.Equal("/healthz", (string)container["livenessProbe"]!["httpGet"]!["path"]!);
        Assert.Equal("metrics", (string)container["livenessProbe"]!["httpGet"]!["port"]!);
        Assert.Equal(grpc, (int)container["readinessProbe"]!["grpc"]!["port"]!);
        Assert.Null(container["readinessProbe"]!["grpc"]!["service"]);
        Assert.Equal(600, (int)container["startupProbe"]!["periodSeconds"]! * (int)container["startupProbe"]!["failureThreshold"]!);

        Assert.NotNull(container["resources"]!["requests"]!["cpu"]);
        Assert.NotNull(container["resources"]!["requests"]!["memory"]);
        Assert.True((bool)container["securityContext"]!["readOnlyRootFilesystem"]!);
        Assert.Contains(container["volumeMounts"]!.AsArray(), m => (string)m!["mountPath"]! == "/tmp");
        var pod = Rendering.PodSpec(chart.Get(kind, name));
        Assert.False((bool)pod["enableServiceLinks"]!);
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
    }

    [Fact]
    public async Task Bookies_and_segment_stores_advertise_their_stable_pod_names_and_every_role_reaches_every_zookeeper_server()
    {
        var chart = await RenderAsync();
        const string zk = "streams-zookeeper-{0}.streams-zookeeper-headless.streams-test.svc.cluster.local:2181";
        var connect = string.Join(",", Enumerable.Range(0, 3).Select(i => string.Format(zk, i))) + "/streams";

        var bookie = Rendering.Env(Rendering.Container(chart.Get("StatefulSet", "streams-bookie")));
        var store = Rendering.Env(Rendering.Container(chart.Get("StatefulSet", "streams-segmentstore")));
        var controller = Rendering.Env(Rendering.Container(chart.Get("Deployment", "streams-controller")));

        Assert.Equal("$(POD_NAME).streams-bookie.streams-test.svc.cluster.local", bookie["STREAMS__SERVER__ADVERTISEDHOST"]);
        Assert.Equal("$(POD_NAME).streams-segmentstore.streams-test.svc.cluster.local", store["STREAMS__SERVER__ADVERTISEDHOST"]);
        Assert.Equal("$(POD_IP)", controller["STREAMS__SERVER__ADVERTISEDHOST"]);
        Assert.All(new[] { bookie, store, controller }, env =>
        {
            Assert.Equal(connect, env["STREAMS__ZOOKEEPER__CONNECT"]);
            Assert.Equal("00:00:04", env["STREAMS__ZOOKEEPER__SESSIONTIMEOUT"]);
        });
        Assert.Equal("/var/lib/streams/bookie", bookie["STREAMS__BOOKIE__DATADIRECTORY"]);
        Assert.Equal("none", store["STREAMS__SEGMENTSTORE__TIER2"]);
        Assert.Equal(("3", "3", "2"), (store["STREAMS__LEDGER__ENSEMBLESIZE"], store["STREAMS__LEDGER__WRITEQUORUM"], store["STREAMS__LEDGER__ACKQUORUM"]));
        Assert.Equal("8", controller["STREAMS__CLUSTER__CONTAINERCOUNT"]);

        var zookeeper = Rendering.Env(Rendering.Container(chart.Get("StatefulSet", "streams-zookeeper")));
        Assert.Equal(
            string.Join(" ", Enumerable.Range(0, 3).Select(i => $"server.{i + 1}=streams-zookeeper-{i}.streams-zookeeper-headless.streams-test.svc.cluster.local:2888:3888;2181")),
            zookeeper["ZOO_SERVERS"]);
        Assert.Equal("false", zookeeper["ZOO_STANDALONE_ENABLED"]);
    }

    [Fact]
    public async Task Notes_give_the_controller_address_and_warn_that_there_is_no_tier_2()
    {
        var chart = await RenderAsync();

        Assert.Contains("http://streams-controller.streams-test.svc.cluster.local:9090", chart.Notes);
        Assert.Contains("WARNING: tier2.type is none", chart.Notes);
    }

    private static IEnumerable<JsonObject> Workloads(Rendering chart) => chart.OfKind("StatefulSet").Concat(chart.OfKind("Deployment"));

    private static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(s => labels.TryGetValue(s.Key, out var value) && value == s.Value);
}
