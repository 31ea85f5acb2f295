namespace Streams.Functions;

/// <summary>
/// Settings of a function (configuration section "Function", or the delegate given to
/// <see cref="FunctionHostExtensions.AddStreamsFunction{THandler, T}"/>).
/// </summary>
public sealed class FunctionOptions
{
    /// <summary>The controller's gRPC address (several separated by commas).</summary>
    public string Controller { get; set; } = "http://127.0.0.1:9090";

    /// <summary>The reader group's scope.</summary>
    public string Scope { get; set; } = "";

    /// <summary>The reader group the function's instances share; created over <see cref="Streams"/> if missing.</summary>
    public string Group { get; set; } = "";

    /// <summary>The streams ("scope/stream") the group reads, for creating it.</summary>
    public IList<string> Streams { get; set; } = [];

    /// <summary>This instance's reader id (default: host name and process id). An instance that restarts under the same id takes over its place at once.</summary>
    public string? InstanceId { get; set; }

    /// <summary>Most events handed to the handler at once.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>How long a batch waits to fill after its first event.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Segments processed at once by this instance (one segment's events always in order, one batch at a time).</summary>
    public int Concurrency { get; set; } = 4;

    /// <summary>Attempts of a failing batch before its events go to the dead-letter stream (or, without one, keep being retried).</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The wait before the first retry; it doubles (with jitter) up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// "scope/stream" that receives the events that failed: after a batch failed <see cref="MaxAttempts"/> times, each of
    /// its events is handled alone once more, and those that fail again are written here (with their routing keys,
    /// once each however often this happens). Null: a failing batch is retried until it succeeds.
    /// </summary>
    public string? DeadLetterStream { get; set; }

    /// <summary>Most events handled per second by this instance; 0: no limit.</summary>
    public double RateLimit { get; set; }

    /// <summary>On shutdown (SIGTERM), how long batches in progress and queued events may take to finish and be committed.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>The HTTP port of /healthz, /readyz and /metrics.</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>The address the HTTP port listens on (all interfaces by default, as a pod's probes need).</summary>
    public string HttpAddress { get; set; } = "0.0.0.0";

    /// <summary>The group's heartbeat and session timeout, for creating it.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(3);

    public TimeSpan SessionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    internal string ReaderId => string.IsNullOrEmpty(InstanceId) ? $"{Environment.MachineName}-{Environment.ProcessId}" : InstanceId;

    internal void Validate()
    {
        if (string.IsNullOrEmpty(Scope) || string.IsNullOrEmpty(Group))
        {
            throw new ArgumentException("Function:Scope and Function:Group name the reader group the function reads.");
        }

        if (Streams.Count == 0)
        {
            throw new ArgumentException("Function:Streams names at least one stream (scope/stream) for the group.");
        }

        if (BatchSize < 1 || Concurrency < 1 || MaxAttempts < 1)
        {
            throw new ArgumentException($"Function:BatchSize, Concurrency and MaxAttempts are at least 1 (are {BatchSize}, {Concurrency}, {MaxAttempts}).");
        }

        if (MaxWait < TimeSpan.Zero || InitialBackoff < TimeSpan.Zero || MaxBackoff < InitialBackoff || DrainTimeout < TimeSpan.Zero || RateLimit < 0)
        {
            throw new ArgumentException("Function:MaxWait, InitialBackoff, DrainTimeout and RateLimit are not negative, and MaxBackoff is at least InitialBackoff.");
        }
    }
}
