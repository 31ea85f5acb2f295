using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Streams.Bookie;
using Streams.Chart.Tests.Harness;
using Streams.Hosting;
using Streams.Ledger;
using Streams.SegmentStore;

namespace Streams.Chart.Tests;

/// <summary>
/// The settings the chart gives each role (STREAMS__SECTION__KEY variables and the --config file of its ConfigMap) are
/// settings the servers read: each binds to the role's option type with no unknown key, and passes its validation.
/// </summary>
public sealed partial class RoleSettingsTests
{
    public static TheoryData<string> ValuesFiles => new() { "", "ci/s3-external-zookeeper-values.yaml", "ci/nfs-values.yaml" };

    [Theory]
    [MemberData(nameof(ValuesFiles))]
    public async Task Every_setting_the_chart_gives_a_role_is_one_the_role_reads(string valuesFile)
    {
        var tools = await ChartTools.Instance;
        var chart = valuesFile.Length == 0 ? await tools.RenderAsync() : await tools.RenderAsync(Path.Combine(ChartTools.Chart, valuesFile));
        var checkedRoles = new List<string>();

        foreach (var workload in chart.OfKind("StatefulSet").Concat(chart.OfKind("Deployment")))
        {
            var container = Rendering.Container(workload);
            if ((string)container["name"]! == "zookeeper")
            {
                continue;
            }

            var role = (string)container["args"]![0]!;
            var configuration = Configuration(container, Rendering.PodSpec(workload), chart);
            // Keys are case-insensitive (the variables are upper case).
            var sections = configuration.GetChildren().Select(c => c.Key).ToList();
            Assert.Contains("Server", sections, StringComparer.OrdinalIgnoreCase);
            Assert.Contains("ZooKeeper", sections, StringComparer.OrdinalIgnoreCase);
            foreach (var section in sections)
            {
                Bind(configuration, section, role);
            }

            checkedRoles.Add(role);
        }

        Assert.Equal(["bookie", "controller", "segmentstore"], checkedRoles.Order());
    }

    [Fact]
    public async Task Variables_refer_only_to_variables_defined_before_them()
    {
        // Kubernetes expands $(NAME) only for variables earlier in the same container's list.
        var chart = await (await ChartTools.Instance).RenderAsync(Path.Combine(ChartTools.Chart, "ci", "s3-external-zookeeper-values.yaml"));

        foreach (var workload in chart.OfKind("StatefulSet").Concat(chart.OfKind("Deployment")))
        {
            var defined = new HashSet<string>();
            foreach (var variable in Rendering.Container(workload)["env"]!.AsArray())
            {
                foreach (Match reference in Reference().Matches((string?)variable!["value"] ?? ""))
                {
                    Assert.Contains(reference.Groups[1].Value, defined);
                }

                defined.Add((string)variable["name"]!);
            }
        }
    }

    /// <summary>The container's configuration as the server builds it: its --config file, then its environment.</summary>
    private static IConfiguration Configuration(JsonObject container, JsonObject pod, Rendering chart)
    {
        var args = container["args"]!.AsArray().Select(a => (string)a!).ToList();
        var file = args[args.IndexOf("--config") + 1];
        var mount = container["volumeMounts"]!.AsArray().Single(m => file.StartsWith((string)m!["mountPath"]! + "/", StringComparison.Ordinal))!;
        var volume = pod["volumes"]!.AsArray().Single(v => (string)v!["name"]! == (string)mount["name"]!)!;
        var map = chart.Get("ConfigMap", (string)volume["configMap"]!["name"]!);
        var json = (string?)map["data"]![Path.GetFileName(file)] ?? throw new InvalidOperationException($"{file} is not in the ConfigMap.");

        var environment = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var variable in container["env"]!.AsArray())
        {
            var name = (string)variable!["name"]!;
            if (name.StartsWith("STREAMS__", StringComparison.Ordinal))
            {
                // What Kubernetes substitutes for the pod's own fields.
                var value = ((string)variable["value"]!).Replace("$(POD_NAME)", "streams-bookie-0", StringComparison.Ordinal).Replace("$(POD_IP)", "10.1.2.3", StringComparison.Ordinal);
                environment[name["STREAMS__".Length..].Replace("__", ":", StringComparison.Ordinal)] = value;
            }
        }

        return new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)))
            .AddInMemoryCollection(environment)
            .Build();
    }

    private static void Bind(IConfiguration configuration, string section, string role)
    {
        if (section.Equals("Cluster", StringComparison.OrdinalIgnoreCase))
        {
            // Read by the controller alone, as one value (ControllerHost: Cluster:ContainerCount, 1 to 4096).
            Assert.Equal("controller", role);
            var keys = configuration.GetSection(section).GetChildren().Select(c => c.Key.ToUpperInvariant()).ToList();
            Assert.Equal(["CONTAINERCOUNT"], keys);
            Assert.InRange(configuration.GetValue<int>("Cluster:ContainerCount"), 1, 4096);
            return;
        }

        var type = section.ToUpperInvariant() switch
        {
            "SERVER" => typeof(ServerSettings),
            "ZOOKEEPER" => typeof(ServerSettings).Assembly.GetType("Streams.Hosting.ZooKeeperSettings", throwOnError: true)!,
            "SEGMENTSTORE" when role == "segmentstore" => typeof(SegmentStoreOptions),
            "LEDGER" when role is "segmentstore" or "bookie" => typeof(LedgerOptions),
            "BOOKIE" when role == "bookie" => typeof(BookieOptions),
            _ => throw new InvalidOperationException($"The {role} is given settings of section {section}, which it does not read."),
        };
        var options = configuration.GetSection(section).Get(type, o => o.ErrorOnUnknownConfiguration = true)
            ?? throw new InvalidOperationException($"Section {section} is empty.");
        type.GetMethod("Validate", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes)?.Invoke(options, null);
    }

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex Reference();
}
