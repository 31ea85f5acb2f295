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
    public static Task<StreamsProcess> StartStandaloneAsync(string dataDirectory, int? grpcPort = null, int? dataPort = null, int? metricsPort = null, params string[] extra) =>
        grpcPort is null && dataPort is null && metricsPort is null
            ? RetryOnPortClashAsync(() => StartServerAsync(["standalone", "--data-dir", dataDirectory, .. extra], Ports.Free(), Ports.Free(), Ports.Free()))
            : StartServerAsync(["standalone", "--data-dir", dataDirectory, .. extra], grpcPort ?? Ports.Free(), dataPort ?? Ports.Free(), metricsPort ?? Ports.Free());

    /// <summary>Starts a server role on fresh ports (gRPC, metrics and, unless <paramref name="dataPort"/> is false, data).</summary>
    public static Task<StreamsProcess> StartOnFreePortsAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, bool dataPort = true) =>
        RetryOnPortClashAsync(() => StartServerAsync(args, Ports.Free(), dataPort ? Ports.Free() : null, Ports.Free(), environment));

    /// <summary>
    /// A port that was free when picked can be taken before the server binds it (by another process, or by an outgoing
    /// connection's local port). A start on fresh ports that failed for that reason is tried again, at most 3 times.
    /// </summary>
    public static async Task<StreamsProcess> RetryOnPortClashAsync(Func<Task<StreamsProcess>> start)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await start();
            }
            catch (InvalidOperationException e) when (attempt < 3 && e.Message.Contains("already in use", StringComparison.OrdinalIgnoreCase))
            {
            }
        }
    }

    /// <summary>
    /// Starts a server role (<c>standalone</c>, <c>bookie</c>, <c>controller</c>, <c>segmentstore</c>, <c>dev-cluster</c>)
    /// on the given ports and waits until it prints its ready line. Fails loudly (with its output) if it does not.
    /// </summary>
    public static async Task<StreamsProcess> StartServerAsync(
        IEnumerable<string> args, int grpcPort, int? dataPort, int metricsPort, IReadOnlyDictionary<string, string>? environment = null, string readyMarker = "is ready")
    {
        var all = new List<string>(args)
        {
            "--port", grpcPort.ToString(CultureInfo.InvariantCulture),
            "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture),
        };
        if (dataPort is { } data)
        {
            all.AddRange(["--data-port", data.ToString(CultureInfo.InvariantCulture)]);
        }

        var process = Start(all, redirectInput: false, environment);
        var server = new StreamsProcess(process) { GrpcPort = grpcPort, DataPort = dataPort ?? 0, MetricsPort = metricsPort };
        server.Capture(readyMarker);
        var ready = await Task.WhenAny(server._ready.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(90)));
        if (ready != server._ready.Task)
        {
            var output = server.Output;
            await server.DisposeAsync();
            throw new InvalidOperationException($"streams {all[0]} did not become ready:\n{output}");
        }

        return server;
    }

    /// <summary>
    /// Starts a client command (e.g. <c>write</c>) that keeps running while the test feeds its stdin through
    /// <see cref="Input"/>; its output is captured (<see cref="Output"/>). Kill it, or close its input and wait.
    /// </summary>
    public static StreamsProcess StartClient(IEnumerable<string> args)
    {
        var client = new StreamsProcess(Start(args, redirectInput: true));
        client.Capture(readyMarker: "\0never");
        return client;
    }

    /// <summary>The stdin of a process started by <see cref="StartClient"/>.</summary>
    public StreamWriter Input => _process.StandardInput;

    /// <summary>Waits for the process to end on its own; returns its exit code, or null if it did not end in time.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
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

    /// <summary>SIGSTOP: the process freezes (a long GC pause, a hung VM) without closing anything.</summary>
    public void Suspend() => Signal(19);

    /// <summary>SIGCONT: a suspended process carries on where it stopped.</summary>
    public void Resume() => Signal(18);

    /// <summary>SIGTERM: the process shuts down cleanly; returns its exit code, or null if it did not exit in time.</summary>
    public Task<int?> TerminateAsync(TimeSpan timeout)
    {
        Signal(15);
        return WaitForExitAsync(timeout);
    }

    public async ValueTask DisposeAsync()
    {
        Resume();
        Kill();
        await Task.Yield();
        _process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private void Signal(int signal)
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, signal);
        }
    }

    /// <summary>
    /// Starts another .NET program of the repository (<paramref name="dll"/>, e.g. an example function) with its output
    /// captured; stop it with <see cref="Kill"/> or <see cref="TerminateAsync"/>.
    /// </summary>
    public static StreamsProcess StartProgram(string dll, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var program = new StreamsProcess(Start(args, redirectInput: false, environment, dll));
        program.Capture(readyMarker: "\0never");
        return program;
    }

    private static Process Start(IEnumerable<string> args, bool redirectInput, IReadOnlyDictionary<string, string>? environment = null, string? dll = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll ?? Repository.CliDll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_gcServer"] = "0";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

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
