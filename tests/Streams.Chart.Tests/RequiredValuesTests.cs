using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>Values the chart cannot work without, or that contradict each other, stop the install with a message naming them.</summary>
public sealed class RequiredValuesTests
{
    [Theory]
    [InlineData("zookeeper:\n  enabled: false\n",
        "zookeeper.external.connect is required when zookeeper.enabled is false: give host:port[,host:port] of your ZooKeeper ensemble")]
    [InlineData("zookeeper:\n  root: streams\n", "zookeeper.root must start with / (is \"streams\")")]
    [InlineData("tier2:\n  type: s3\n", "tier2.s3.bucket is required when tier2.type is s3")]
    [InlineData("tier2:\n  type: s3\n  s3:\n    bucket: b\n    accessKeyId: AKIA\n", "tier2.s3.accessKeyId and tier2.s3.secretAccessKey go together")]
    [InlineData("tier2:\n  type: filesystem\n", "tier2.type filesystem needs tier2.filesystem.existingClaim (a ReadWriteMany claim) or tier2.filesystem.nfs.server and .path")]
    [InlineData("tier2:\n  type: hdfs\n", "tier2.type must be none, s3 or filesystem (is \"hdfs\")")]
    [InlineData("bookie:\n  replicas: 2\n", "bookie.replicas (2) must be at least ledger.ensembleSize (3): every ledger is striped over that many bookies")]
    [InlineData("ledger:\n  ackQuorum: 4\n", "ledger: ensembleSize (3) >= writeQuorum (3) >= ackQuorum (4) >= 1 must hold")]
    [InlineData("segmentStore:\n  antiAffinity: strict\n", "segmentStore.antiAffinity must be soft, hard or none (is \"strict\")")]
    [InlineData("controller:\n  podDisruptionBudget:\n    maxUnavailable: 1\n", "controller.podDisruptionBudget takes minAvailable or maxUnavailable, not both (set the other to null)")]
    [InlineData("keda:\n  scaledObjects:\n    - scope: shop\n      stream: orders\n", "keda.scaledObjects[0].scaleTargetRef.name is required: the function Deployment to scale")]
    [InlineData("keda:\n  scaledObjects:\n    - scaleTargetRef: {name: f}\n      stream: orders\n", "keda.scaledObjects[0].scope is required")]
    [InlineData("keda:\n  scaledObjects:\n    - scaleTargetRef: {name: f}\n      scope: shop\n", "keda.scaledObjects[0].stream is required with metric segments")]
    [InlineData("keda:\n  scaledObjects:\n    - scaleTargetRef: {name: f}\n      scope: shop\n      stream: orders\n    - scaleTargetRef: {name: g}\n      scope: shop\n      metric: unreadBytes\n",
        "keda.scaledObjects[1].readerGroup is required with metric unreadBytes")]
    [InlineData("keda:\n  scaledObjects:\n    - scaleTargetRef: {name: f}\n      scope: shop\n      metric: lag\n", "keda.scaledObjects[0].metric must be segments or unreadBytes (is \"lag\")")]
    public async Task The_install_stops_with_a_message_naming_the_value(string values, string message)
    {
        var tools = await ChartTools.Instance;

        var output = await tools.RenderFailureAsync(tools.Values(values));

        Assert.Contains("Error: execution error at (streams/templates/", output, StringComparison.Ordinal);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_same_values_with_what_was_missing_render()
    {
        var tools = await ChartTools.Instance;

        var chart = await tools.RenderAsync(tools.Values(
            "zookeeper:\n  enabled: false\n  external:\n    connect: zk:2181\ncontroller:\n  podDisruptionBudget:\n    minAvailable: null\n    maxUnavailable: 1\n"));

        Assert.Equal("zk:2181/streams", Rendering.Env(Rendering.Container(chart.Get("Deployment", "streams-controller")))["STREAMS__ZOOKEEPER__CONNECT"]);
    }
}
