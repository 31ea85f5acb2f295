using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace Streams.Chart.Tests.Harness;

/// <summary>
/// The chart and the tools that check it: the renderer (tests/chart/render, compiled once per test run with Debian's
/// Go and Sprig), the schema validator (tests/chart/validate.mjs on the kubernetes-models packages of tests/interop)
/// and yamllint. A missing tool fails the tests with the command that installs it; nothing is skipped.
/// </summary>
internal sealed class ChartTools
{
    private static readonly Lazy<Task<ChartTools>> Shared = new(BuildAsync);

    private ChartTools(string renderer, string work)
    {
        Renderer = renderer;
        Work = work;
    }

    public static Task<ChartTools> Instance => Shared.Value;

    public static string Root { get; } = FindRoot();

    public static string Chart => Path.Combine(Root, "charts", "streams");

    public static string InteropDirectory => Path.Combine(Root, "tests", "interop");

    public static string YamllintConfig => Path.Combine(Root, "tests", "chart", "yamllint.yaml");

    /// <summary>The compiled renderer.</summary>
    public string Renderer { get; }

    /// <summary>A directory of this test run for rendered output and values files.</summary>
    public string Work { get; }

    /// <summary>Renders the chart with the given values files (later ones win), failing the test if rendering fails.</summary>
    public Task<Rendering> RenderAsync(params string[] valueFiles) => RenderChartAsync(Chart, valueFiles);

    /// <summary>Renders another chart (the renderer's own fixture).</summary>
    public async Task<Rendering> RenderChartAsync(string chart, params string[] valueFiles)
    {
        var (exit, output, directory) = await RunRendererAsync(chart, valueFiles);
        if (exit != 0)
        {
            throw new InvalidOperationException($"Rendering failed ({exit}): {output}");
        }

        return Rendering.Load(directory);
    }

    /// <summary>Renders a chart that must not render, and returns what the renderer said.</summary>
    public Task<string> RenderFailureAsync(params string[] valueFiles) => RenderChartFailureAsync(Chart, valueFiles);

    public async Task<string> RenderChartFailureAsync(string chart, params string[] valueFiles)
    {
        var (exit, output, _) = await RunRendererAsync(chart, valueFiles);
        return exit == 1 ? output : throw new InvalidOperationException($"Rendering was expected to fail with exit code 1 (got {exit}): {output}");
    }

    /// <summary>Writes a values file for one test.</summary>
    public string Values(string yaml)
    {
        var file = Path.Combine(Work, $"values-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, yaml);
        return file;
    }

    public const string Namespace = "streams-test";

    private async Task<(int Exit, string Output, string Directory)> RunRendererAsync(string chart, string[] valueFiles)
    {
        var directory = Path.Combine(Work, "render-" + Guid.NewGuid().ToString("N"));
        var args = new List<string> { "-chart", chart, "-name", "streams", "-namespace", Namespace, "-out", directory };
        foreach (var file in valueFiles)
        {
            args.Add("-f");
            args.Add(file);
        }

        var result = await RunAsync(Renderer, args, null, TimeSpan.FromSeconds(30), "the chart renderer");
        return (result.Exit, result.Stdout + result.Stderr, directory);
    }

    /// <summary>Validates every object of a rendering against Kubernetes' schemas; returns the validator's report.</summary>
    public static async Task<ValidationReport> ValidateAsync(string manifestsJson)
    {
        var result = await RunAsync("node", [Path.Combine(Root, "tests", "chart", "validate.mjs"), manifestsJson, InteropDirectory], null, TimeSpan.FromSeconds(60),
            "Node.js (apt-get install nodejs npm, then npm ci --prefix tests/interop; tools/test.sh does both)");
        if (result.Exit is not (0 or 1))
        {
            throw new InvalidOperationException($"The schema validator could not run ({result.Exit}): {result.Stderr}{result.Stdout}");
        }

        return ValidationReport.Parse(result.Stdout, result.Exit);
    }

    /// <summary>Runs yamllint with the chart's rules; returns its exit code and what it printed.</summary>
    public static async Task<(int Exit, string Output)> YamllintAsync(params string[] files)
    {
        var result = await RunAsync("yamllint", ["-f", "parsable", "-c", YamllintConfig, .. files], null, TimeSpan.FromSeconds(60),
            "yamllint (apt-get install yamllint; tools/test.sh does)");
        if (result.Exit is not (0 or 1))
        {
            throw new InvalidOperationException($"yamllint could not run ({result.Exit}): {result.Stderr}{result.Stdout}");
        }

        return (result.Exit, result.Stdout + result.Stderr);
    }

    private static async Task<ChartTools> BuildAsync()
    {
        var work = Path.Combine(Path.GetTempPath(), "streams-chart-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
                // Left in the temporary directory.
            }
        };
        var renderer = Path.Combine(work, "render");
        // GOPATH mode on Debian's Go sources, offline; the build cache outlives the run so later runs link in a second.
        var environment = new Dictionary<string, string>
        {
            ["GO111MODULE"] = "off",
            ["GOPATH"] = "/usr/share/gocode",
            ["GOFLAGS"] = "",
            ["GOPROXY"] = "off",
            ["GOCACHE"] = Path.Combine(Path.GetTempPath(), "streams-chart-gocache"),
        };
        var result = await RunAsync("go", ["build", "-o", renderer, "./tests/chart/render"], environment, TimeSpan.FromMinutes(3),
            "Go and the renderer's packages (apt-get install golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev; tools/test.sh does)");
        if (result.Exit != 0)
        {
            throw new InvalidOperationException(
                "The chart renderer did not build (are golang-go, golang-github-masterminds-sprig-dev and golang-k8s-sigs-yaml-dev installed? tools/test.sh installs them): " +
                result.Stderr + result.Stdout);
        }

        return new ChartTools(renderer, work);
    }

    internal static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(
        string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment, TimeSpan timeout, string what)
    {
        var info = new ProcessStartInfo(program)
        {
            WorkingDirectory = Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {program}.");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{program} could not be started ({e.Message}): install {what}.", e);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', info.ArgumentList)} did not finish within {timeout}.");
            }

            return (process.ExitCode, await stdout, await stderr);
        }
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Streams.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException($"No Streams.sln above {AppContext.BaseDirectory}.");
    }
}
