using System.Diagnostics;
using System.Text.Json;

namespace Streams.Testing;

/// <summary>
/// Runs the Node.js scripts of tests/interop (grpc-js and its reflection client, xxhash-wasm, s3rver). The test
/// command installs their packages (npm ci); if any is missing, tests fail saying how to install them rather than
/// skipping.
/// </summary>
public static class Node
{
    public static string InteropDirectory => Path.Combine(Repository.Root, "tests", "interop");

    /// <summary>Throws, saying how to install them, unless every package of tests/interop/package.json is installed.</summary>
    public static void EnsureInstalled()
    {
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(InteropDirectory, "package.json")));
        var missing = manifest.RootElement.GetProperty("dependencies").EnumerateObject()
            .Select(p => p.Name)
            .Where(name => !File.Exists(Path.Combine(InteropDirectory, "node_modules", name, "package.json")))
            .ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"The interop packages {string.Join(", ", missing)} are not installed: run `npm ci --prefix {InteropDirectory}` (the README's test command does).");
        }
    }

    /// <summary>Runs a script to completion and parses the JSON object it prints last.</summary>
    public static async Task<JsonElement> RunJsonAsync(string script, params string[] args)
    {
        var output = await RunAsync(script, args);
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()
            ?? throw new InvalidOperationException($"node {script} printed nothing.");
        return JsonDocument.Parse(last).RootElement.Clone();
    }

    public static async Task<string> RunAsync(string script, params string[] args)
    {
        EnsureInstalled();
        using var process = Start(script, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"node {script} {string.Join(' ', args)} exited with {process.ExitCode}: {await stderr}");
        }

        return await stdout;
    }

    /// <summary>Starts a long-running script and waits until it prints <paramref name="readyLine"/>.</summary>
    public static async Task<Process> StartAsync(string script, string readyLine, params string[] args)
    {
        EnsureInstalled();
        var process = Start(script, args);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data == readyLine)
            {
                ready.TrySetResult();
            }
        };
        process.BeginOutputReadLine();
        var started = await Task.WhenAny(ready.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
        if (started != ready.Task)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"node {script} did not print '{readyLine}': {await process.StandardError.ReadToEndAsync()}");
        }

        return process;
    }

    /// <summary>Starts a long-running script; <paramref name="onLine"/> gets each line it prints, as it prints it.</summary>
    public static Process StartWithLines(string script, Action<string> onLine, params string[] args)
    {
        EnsureInstalled();
        var process = Start(script, args);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                onLine(line);
            }
        };
        process.BeginOutputReadLine();
        return process;
    }

    private static Process Start(string script, string[] args)
    {
        var info = new ProcessStartInfo("node")
        {
            WorkingDirectory = InteropDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(InteropDirectory, script));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("Could not start node (is Node.js installed?).");
    }
}
