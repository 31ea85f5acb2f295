using System.Diagnostics;

namespace Streams.Client.Internal;

/// <summary>
/// The SDK's spans (activity source <see cref="StreamsClient.ActivitySourceName"/>): one per controller call (stream
/// management, and the lookups writers and readers make). While one is current, Grpc.Net.Client sends its trace
/// context (traceparent) with the call, so the controller's spans join the application's trace. With no listener,
/// starting a span costs one check and returns null.
/// </summary>
internal static class ClientTracing
{
    public static readonly ActivitySource Source = new(StreamsClient.ActivitySourceName);

    /// <summary>Starts a span named after the SDK method (CreateStreamAsync → CreateStream); null when nobody listens.</summary>
    public static Activity? StartCall(string method)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        return Source.StartActivity(method.EndsWith("Async", StringComparison.Ordinal) ? method[..^"Async".Length] : method, ActivityKind.Client);
    }
}
