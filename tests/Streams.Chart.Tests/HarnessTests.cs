using System.Text.Json.Nodes;
using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>
/// The checks themselves: the renderer keeps Helm's semantics (on tests/chart/fixture, a chart made to show them; the
/// expected values are what Helm prints for it), and the schema validator and yamllint reject what they should, so a
/// passing chart test means something.
/// </summary>
public sealed class HarnessTests
{
    private static readonly string Fixture = Path.Combine(ChartTools.Root, "tests", "chart", "fixture");

    [Fact]
    public async Task The_renderer_keeps_helms_semantics()
    {
        var tools = await ChartTools.Instance;

        var chart = await tools.RenderChartAsync(Fixture, tools.Values("nested:\n  drop: null\nsmall: 4\n"));

        var map = Assert.Single(chart.Documents); // the comment-only document is dropped
        Assert.Equal("fixture/templates/configmap.yaml", map.Source);
        Assert.Equal("fixture-streams", (string)map.Object["metadata"]!["name"]!);          // include of a define in _names.tpl
        Assert.Equal(ChartTools.Namespace, (string)map.Object["metadata"]!["namespace"]!);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["big"] = "6.7108864e+07",             // values are read as Helm reads them: numbers are float64
                ["bigInt"] = "67108864",
                ["small"] = "4",                       // a values file overrides values.yaml
                ["ratio"] = "0.5",
                ["missing"] = "",                      // a missing key renders empty, not "<no value>"
                ["nested"] = "keep: kept",             // null deletes a default; toYaml as Helm's
                ["list"] = "a,b",                      // Sprig
                ["tpl"] = "streams-4",
                ["template"] = "fixture/templates/configmap.yaml",
                ["basePath"] = "fixture/templates",
                ["chart"] = "fixture 1.2.3 4.5",
                ["kube"] = "v1.30.0",
                ["apps"] = "true",
                ["keda"] = "false",
                ["json"] = "{\"a\":[1,\"x\"],\"b\":1}",
            },
            Rendering.Labels(map.Object["data"]));
    }

    [Fact]
    public async Task Required_fails_as_in_helm_naming_the_template_and_position()
    {
        var tools = await ChartTools.Instance;

        var output = await tools.RenderChartFailureAsync(Fixture, tools.Values("mustFail: true\n"));

        Assert.Equal("Error: execution error at (fixture/templates/required.yaml:2:4): mustFail needs a reason", output.Trim());
    }

    [Fact]
    public async Task The_validator_rejects_wrong_types_unknown_fields_and_kinds_it_has_no_schema_for()
    {
        var tools = await ChartTools.Instance;
        var objects = new JsonArray(
            Document("""{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"typo"},"spec":{"selector":{},"template":{"spec":{"containers":[{"name":"a","image":"b","livenesProbe":{}}]}}}}"""),
            Document("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"port"},"spec":{"ports":[{"port":"grpc"}]}}"""),
            Document("""{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"number"},"spec":{"scaleTargetRef":{"name":"f"},"triggers":[{"type":"external","metadata":{"targetBytesPerReplica":67108864}}]}}"""),
            Document("""{"apiVersion":"monitoring.coreos.com/v1","kind":"ServiceMonitor","metadata":{"name":"monitor"},"spec":{"selector":{},"endpoints":[{"port":"metrics","intervall":"30s"}]}}"""),
            Document("""{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"widget"}}"""),
            Document("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fine"},"data":{"a":"b"}}"""));
        var file = Path.Combine(tools.Work, $"invalid-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, objects.ToJsonString(), TestContext.Current.CancellationToken);

        var report = await ChartTools.ValidateAsync(file);

        Assert.Equal(1, report.Exit);
        Assert.Equal(6, report.Objects);
        Assert.Contains(report.Errors, e => e.Contains("Deployment typo", StringComparison.Ordinal) && e.Contains("'\"livenesProbe\"' does not exist", StringComparison.Ordinal));
        Assert.Contains(report.Errors, e => e.Contains("Service port", StringComparison.Ordinal) && e.Contains("port must be integer", StringComparison.Ordinal));
        Assert.Contains(report.Errors, e => e.Contains("ScaledObject number", StringComparison.Ordinal) && e.Contains("targetBytesPerReplica must be string", StringComparison.Ordinal));
        Assert.Contains(report.Errors, e => e.Contains("ServiceMonitor monitor", StringComparison.Ordinal) && e.Contains("'\"intervall\"' does not exist", StringComparison.Ordinal));
        Assert.Contains(report.Errors, e => e.Contains("Widget widget: no schema for example.com/v1 Widget", StringComparison.Ordinal));
        Assert.DoesNotContain(report.Errors, e => e.Contains("ConfigMap fine", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Yamllint_rejects_duplicate_keys_and_trailing_spaces()
    {
        var tools = await ChartTools.Instance;
        var file = Path.Combine(tools.Work, $"lint-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(file, "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata:\n  name: x \n", TestContext.Current.CancellationToken);

        var (exit, output) = await ChartTools.YamllintAsync(file);

        Assert.Equal(1, exit);
        Assert.Contains("duplication of key \"kind\"", output, StringComparison.Ordinal);
        Assert.Contains("trailing spaces", output, StringComparison.Ordinal);
    }

    private static JsonObject Document(string json) => new() { ["source"] = "test", ["object"] = JsonNode.Parse(json) };
}
