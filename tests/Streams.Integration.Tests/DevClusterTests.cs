using System.Globalization;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>`streams dev-cluster` as a user runs it: one command, a working cluster, and SIGTERM leaves nothing behind.</summary>
public sealed class DevClusterTests
{
    [Fact]
    public async Task Dev_cluster_serves_writes_and_reads_and_stops_all_its_children_on_SIGTERM()
    {
        using var dir = new TempDirectory("dev-cluster");
        var port = Ports.Free();
        await using var cluster = await StreamsProcess.StartServerAsync(
            ["dev-cluster", "--data-dir", dir.Path, "--bookies", "3", "--session-timeout-ms", "2000"], port, null, Ports.Free(), readyMarker: "dev cluster is ready");
        var controller = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
        var children = ChildrenOf(cluster.Pid);
        Assert.True(children.Count >= 6, $"Expected ZooKeeper, 3 bookies, a controller and a segment store; found {children.Count} children.");

        Task<CliResult> Run(string? stdin, params string[] args) => StreamsProcess.RunAsync([.. args, "--controller", controller], stdin);
        Assert.Equal(0, (await Run(null, "scope", "create", "dev")).ExitCode);
        Assert.Equal(0, (await Run(null, "stream", "create", "dev/lines", "--segments", "4")).ExitCode);
        var write = await Run("a:one\nb:two\nc:three\n", "write", "dev/lines", "--key-separator", ":");
        Assert.True(write.ExitCode == 0, write.Stderr + "\n" + cluster.Output);
        var read = await Run(null, "read", "dev/lines", "--from-start");
        Assert.Equal(["one", "three", "two"], read.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());

        Assert.Equal(0, await cluster.TerminateAsync(TimeSpan.FromSeconds(60)));
        Assert.DoesNotContain(children, IsAlive);
    }

    /// <summary>Live (not zombie) child processes of <paramref name="parent"/>.</summary>
    private static List<int> ChildrenOf(int parent) =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && Status(pid) is { } status && status.ParentPid == parent && status.State != 'Z')
            .ToList();

    private static bool IsAlive(int pid) => Status(pid) is { State: not 'Z' };

    private static (int ParentPid, char State)? Status(int pid)
    {
        try
        {
            var lines = File.ReadAllLines($"/proc/{pid}/status");
            var state = lines.First(l => l.StartsWith("State:", StringComparison.Ordinal))[6..].Trim()[0];
            var parent = int.Parse(lines.First(l => l.StartsWith("PPid:", StringComparison.Ordinal))[5..].Trim(), CultureInfo.InvariantCulture);
            return (parent, state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return null;
        }
    }
}
