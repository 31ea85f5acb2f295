using System.Diagnostics;

namespace Streams.Controller;

/// <summary>
/// The controller's spans (activity source "Streams.Controller"): stream operations (create, update, seal, truncate,
/// delete, finishing half-done ones) and each segment-store call they make. The gRPC server span that ASP.NET Core
/// starts for the request is their parent, so a client's trace continues through them.
/// </summary>
public static class ControllerTracing
{
    public const string SourceName = "Streams.Controller";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>Starts a span for an operation on a stream; null when nobody listens.</summary>
    public static Activity? StartStream(string name, string scope, string stream)
    {
        var activity = Source.StartActivity(name);
        activity?.SetTag("streams.scope", scope).SetTag("streams.stream", stream);
        return activity;
    }
}
