using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>Tier 2 from values: a shared volume (an NFS export or a ReadWriteMany claim), or S3 with keys the chart keeps.</summary>
public sealed class Tier2Tests
{
    [Fact]
    public async Task An_nfs_export_is_mounted_in_every_segment_store_and_named_as_a_file_tier_2()
    {
        var chart = await (await ChartTools.Instance).RenderAsync(Path.Combine(ChartTools.Chart, "ci", "nfs-values.yaml"));
        var stores = chart.Get("StatefulSet", "streams-segmentstore");
        var container = Rendering.Container(stores);

        Assert.Equal("file:///mnt/tier2", Rendering.Env(container)["STREAMS__SEGMENTSTORE__TIER2"]);
        Assert.Contains(container["volumeMounts"]!.AsArray(), m => (string)m!["name"]! == "tier2" && (string)m["mountPath"]! == "/mnt/tier2");
        var volume = Rendering.PodSpec(stores)["volumes"]!.AsArray().Single(v => (string)v!["name"]! == "tier2")!;
        Assert.Equal(("nfs.storage.svc.cluster.local", "/exports/streams"), ((string)volume["nfs"]!["server"]!, (string)volume["nfs"]!["path"]!));
        // Only segment stores mount it.
        Assert.DoesNotContain(Rendering.Container(chart.Get("StatefulSet", "streams-bookie"))["volumeMounts"]!.AsArray(), m => (string)m!["name"]! == "tier2");
    }

    [Fact]
    public async Task The_nfs_values_render_a_single_zookeeper_server_without_anti_affinity_and_validate()
    {
        var chart = await (await ChartTools.Instance).RenderAsync(Path.Combine(ChartTools.Chart, "ci", "nfs-values.yaml"));

        var zookeeper = Rendering.Env(Rendering.Container(chart.Get("StatefulSet", "streams-zookeeper")));
        Assert.Equal("server.1=streams-zookeeper-0.streams-zookeeper-headless.streams-test.svc.cluster.local:2888:3888;2181", zookeeper["ZOO_SERVERS"]);
        Assert.Equal("true", zookeeper["ZOO_STANDALONE_ENABLED"]);
        Assert.Equal(
            "streams-zookeeper-0.streams-zookeeper-headless.streams-test.svc.cluster.local:2181/streams",
            Rendering.Env(Rendering.Container(chart.Get("Deployment", "streams-controller")))["STREAMS__ZOOKEEPER__CONNECT"]);
        Assert.All(chart.OfKind("StatefulSet").Concat(chart.OfKind("Deployment")), w => Assert.Null(Rendering.PodSpec(w)["affinity"]));

        var report = await ChartTools.ValidateAsync(chart.ManifestsJson);
        var (exit, output) = await ChartTools.YamllintAsync(chart.ManifestsYaml);
        Assert.Empty(report.Errors);
        Assert.Equal(15, report.Objects);
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task A_read_write_many_claim_can_hold_tier_2()
    {
        var tools = await ChartTools.Instance;
        var chart = await tools.RenderAsync(tools.Values("tier2:\n  type: filesystem\n  filesystem:\n    existingClaim: streams-tier2\n"));
        var stores = chart.Get("StatefulSet", "streams-segmentstore");

        Assert.Equal("file:///var/lib/streams/tier2", Rendering.Env(Rendering.Container(stores))["STREAMS__SEGMENTSTORE__TIER2"]);
        var volume = Rendering.PodSpec(stores)["volumes"]!.AsArray().Single(v => (string)v!["name"]! == "tier2")!;
        Assert.Equal("streams-tier2", (string)volume["persistentVolumeClaim"]!["claimName"]!);
        Assert.Null(volume["nfs"]);
        Assert.Empty((await ChartTools.ValidateAsync(chart.ManifestsJson)).Errors);
    }

    [Fact]
    public async Task Keys_given_as_values_go_into_a_secret_of_the_chart_that_the_segment_stores_read()
    {
        var tools = await ChartTools.Instance;
        var chart = await tools.RenderAsync(tools.Values(
            "tier2:\n  type: s3\n  s3:\n    bucket: archive\n    accessKeyId: AKIAEXAMPLE\n    secretAccessKey: \"s3cr3t/+=\"\n"));
        var store = Rendering.Container(chart.Get("StatefulSet", "streams-segmentstore"));

        var secret = chart.Get("Secret", "streams-tier2-s3");
        Assert.Equal(
            new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE", ["AWS_SECRET_ACCESS_KEY"] = "s3cr3t/+=" },
            Rendering.Labels(secret["stringData"]));
        Assert.Equal(("streams-tier2-s3", "AWS_ACCESS_KEY_ID"), Rendering.SecretEnv(store, "AWS_ACCESS_KEY_ID"));
        Assert.Equal(("streams-tier2-s3", "AWS_SECRET_ACCESS_KEY"), Rendering.SecretEnv(store, "AWS_SECRET_ACCESS_KEY"));
        Assert.Equal("s3://archive", Rendering.Env(store)["STREAMS__SEGMENTSTORE__TIER2"]);
        Assert.DoesNotContain(Rendering.Env(store).Values, v => v.Contains("s3cr3t", StringComparison.Ordinal));
        Assert.Empty((await ChartTools.ValidateAsync(chart.ManifestsJson)).Errors);
    }

    [Fact]
    public async Task Without_keys_the_segment_stores_use_the_sdks_default_credentials()
    {
        var tools = await ChartTools.Instance;
        var chart = await tools.RenderAsync(tools.Values(
            "serviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/streams\ntier2:\n  type: s3\n  s3:\n    bucket: archive\n    prefix: cluster-a\n    pathStyle: false\n"));
        var store = Rendering.Container(chart.Get("StatefulSet", "streams-segmentstore"));

        Assert.Equal("s3://archive/cluster-a?pathStyle=false", Rendering.Env(store)["STREAMS__SEGMENTSTORE__TIER2"]);
        Assert.Null(Rendering.SecretEnv(store, "AWS_ACCESS_KEY_ID"));
        Assert.Empty(chart.OfKind("Secret"));
        Assert.Equal("arn:aws:iam::123456789012:role/streams", (string)chart.Get("ServiceAccount", "streams")["metadata"]!["annotations"]!["eks.amazonaws.com/role-arn"]!);
    }
}
