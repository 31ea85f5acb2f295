using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Streams.Testing;

/// <summary>
/// A real Prometheus server (Debian's prometheus package) on a free loopback port with its own TSDB directory,
/// scraping the given metrics ports on 127.0.0.1 every second (job "streams"). Queries go through its HTTP API. If it
/// cannot start, tests fail saying why.
/// </summary>
public sealed class PrometheusServer : RestartableServer
{
    public const string Binary = "/usr/bin/prometheus";
    public const string Promtool = "/usr/bin/promtool";

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private PrometheusServer(int port)
        : base("prometheus", port)
    {
    }

    /// <summary>Starts Prometheus scraping /metrics on each of <paramref name="metricsPorts"/>.</summary>
    public static async Task<PrometheusServer> StartAsync(params int[] metricsPorts)
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException($"Prometheus is not installed ({Binary} is missing): run `apt-get install prometheus` (tools/test.sh does).");
        }

        var server = new PrometheusServer(Ports.Free());
        var targets = string.Join(", ", metricsPorts.Select(p => $"'127.0.0.1:{p.ToString(CultureInfo.InvariantCulture)}'"));
        await File.WriteAllTextAsync(Path.Combine(server.Directory.Path, "prometheus.yml"), string.Join('\n',
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 1s",
            "  evaluation_interval: 1s",
            "scrape_configs:",
            "  - job_name: streams",
            "    static_configs:",
            $"      - targets: [{targets}]",
            string.Empty));
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>
    /// Runs an instant query (GET /api/v1/query) and returns the first sample's value, or null when the result is empty.
    /// Throws when Prometheus answers with an error.
    /// </summary>
    public async Task<double?> QueryAsync(string query, CancellationToken cancellationToken = default)
    {
        var uri = new Uri($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/api/v1/query?query={Uri.EscapeDataString(query)}");
        using var answer = JsonDocument.Parse(await Http.GetStringAsync(uri, cancellationToken));
        var root = answer.RootElement;
        if (root.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"Prometheus refused the query {query}: {root}");
        }

        var result = root.GetProperty("data").GetProperty("result");
        return result.GetArrayLength() == 0
            ? null
            : double.Parse(result[0].GetProperty("value")[1].GetString()!, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Queries every 200 ms until the value satisfies <paramref name="done"/> or <paramref name="timeout"/> passes, and
    /// returns the last value (null if the query never had a result).
    /// </summary>
    public async Task<double?> WaitForAsync(string query, Func<double, bool> done, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await QueryAsync(query, cancellationToken);
            if ((value is { } v && done(v)) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>Runs <c>promtool check metrics</c> on a scrape; returns its exit code and what it printed.</summary>
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string scrape)
    {
        var info = new ProcessStartInfo(Promtool)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("check");
        info.ArgumentList.Add("metrics");
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {Promtool}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(scrape);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    protected override ProcessStartInfo Command()
    {
        var info = new ProcessStartInfo(Binary);
        foreach (var arg in new[]
        {
            "--config.file=" + Path.Combine(Directory.Path, "prometheus.yml"),
            "--storage.tsdb.path=" + Directory.Sub("data"),
            "--web.listen-address=127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture),
        })
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }

    /// <summary>/-/ready answers 200 once Prometheus has loaded its configuration and its TSDB.</summary>
    protected override async Task<bool> ReadyAsync()
    {
        try
        {
            using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/-/ready"));
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }
}
