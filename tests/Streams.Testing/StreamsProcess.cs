using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Streams.Testing;

/// <summary>The output of a finished CLI command.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// The real <c>streams</c> executable run as a process, for multi-process and fault tests. Servers are started on
/// free loopback ports and awaited until they print their ready line; <see cref="Kill"/> sends SIGKILL.
/// </summary>
public sealed class StreamsProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private StreamsProcess(Process process)
    {
        _process = process;
    }

    public int GrpcPort { get; private init; }

    public int DataPort { get; private init; }

    public int MetricsPort { get; private init; }

    public string ControllerUri => $"http://127.0.0.1:{GrpcPort}";

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process printed so far (stdout and stderr interleaved).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <c>streams standalone</c> and waits until it is ready. Fails loudly (with its output) if it is not.</summary>
    public static async Task<StreamsProcess> StartStandaloneAsync(string dataDirectory, int? grpcPort = null, int? dataPort = null, int? metricsPort = null, params string[] extra)
    {
        var grpc = grpcPort ?? Ports.Free();
        var data = dataPort ?? Ports.Free();
        var metrics = metricsPort ?? Ports.Free();
        var args = new List<string>
        {
            "standalone", "--data-dir", dataDirectory,
            "--port", grpc.ToString(CultureInfo.InvariantCulture),
            "--data-port", data.ToString(CultureInfo.InvariantCulture),
            "--metrics-port", metrics.ToString(CultureInfo.InvariantCulture),
        };
        args.AddRange(extra);
        var process = Start(args, redirectInput: false);
        var server = new StreamsProcess(process) { GrpcPort = grpc, DataPort = data, MetricsPort = metrics };
        server.Capture("is ready");
        var ready = await Task.WhenAny(server._ready.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
        if (ready != server._ready.Task)
        {
            var output = server.Output;
            await server.DisposeAsync();
            throw new InvalidOperationException($"streams standalone did not become ready:\n{output}");
        }

        return server;
    }

    /// <summary>Runs a CLI command to completion (bounded by <paramref name="timeout"/>).</summary>
    public static async Task<CliResult> RunAsync(IEnumerable<string> args, string? stdin = null, TimeSpan? timeout = null)
    {
        using var process = Start(args, redirectInput: stdin is not null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"streams {string.Join(' ', args)} did not finish in time. Output: {await stdout} {await stderr}");
        }

        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.Yield();
        _process.Dispose();
    }

    private static Process Start(IEnumerable<string> args, bool redirectInput)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Repository.CliDll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_gcServer"] = "0";
        return Process.Start(info) ?? throw new InvalidOperationException("Could not start the streams process.");
    }

    private void Capture(string readyMarker)
    {
        void OnLine(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_output)
            {
                _output.AppendLine(e.Data);
            }

            if (e.Data.Contains(readyMarker, StringComparison.Ordinal))
            {
                _ready.TrySetResult();
            }
        }

        _process.OutputDataReceived += OnLine;
        _process.ErrorDataReceived += OnLine;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }
}
