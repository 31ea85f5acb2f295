using Streams.Chart.Tests.Harness;

namespace Streams.Chart.Tests;

/// <summary>
/// The server image's Dockerfile agrees with the repository and with the chart (no Docker engine runs the build here):
/// it publishes the CLI project that exists, whose executable is `streams`, and the chart runs that entrypoint.
/// </summary>
public sealed class DockerfileTests
{
    private static readonly string Dockerfile = File.ReadAllText(Path.Combine(ChartTools.Root, "Dockerfile"));

    [Fact]
    public void The_image_publishes_the_cli_and_runs_streams()
    {
        var publish = Dockerfile.Split('\n').Single(l => l.StartsWith("RUN dotnet publish ", StringComparison.Ordinal));
        var project = publish.Split(' ')[3];

        Assert.True(File.Exists(Path.Combine(ChartTools.Root, project)), $"{project} does not exist");
        Assert.Contains("<AssemblyName>streams</AssemblyName>", File.ReadAllText(Path.Combine(ChartTools.Root, project)), StringComparison.Ordinal);
        Assert.Contains("--output /app", publish, StringComparison.Ordinal);
        Assert.Contains("ln -s /app/streams /usr/local/bin/streams", Dockerfile, StringComparison.Ordinal);
        Assert.Contains("ENTRYPOINT [\"streams\"]", Dockerfile, StringComparison.Ordinal);
        Assert.Contains("USER $APP_UID", Dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_chart_runs_the_image_as_the_user_the_image_runs_as()
    {
        var chart = await (await ChartTools.Instance).RenderAsync();

        // The .NET images' "app" user; the data volumes are made its own through fsGroup.
        var pod = Rendering.PodSpec(chart.Get("StatefulSet", "streams-bookie"));
        Assert.Equal(1654, (int)pod["securityContext"]!["runAsUser"]!);
        Assert.Equal(1654, (int)pod["securityContext"]!["fsGroup"]!);
        Assert.Null(Rendering.Container(chart.Get("StatefulSet", "streams-bookie"))["command"]); // the image's entrypoint
    }

    [Fact]
    public void The_build_context_leaves_out_build_output_and_what_the_image_does_not_need()
    {
        var ignored = File.ReadAllLines(Path.Combine(ChartTools.Root, ".dockerignore")).Where(l => l.Length > 0 && l[0] != '#').ToHashSet();

        Assert.Superset(new HashSet<string> { "**/bin/", "**/obj/", "**/node_modules/", ".git/", "tests/" }, ignored);
        // Everything the CLI builds from stays in the context.
        Assert.DoesNotContain(ignored, i => i.TrimEnd('/') is "common" or "segmentstore" or "controller" or "client" or "tier2" or "tools" or "Directory.Build.props" or "Directory.Packages.props" or "global.json");
    }
}
