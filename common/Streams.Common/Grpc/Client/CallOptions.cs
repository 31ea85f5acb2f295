namespace Streams.Common.Grpc.Client;

/// <summary>Per-call settings: an absolute deadline, cancellation and extra request headers.</summary>
internal readonly record struct CallOptions(
    DateTime? Deadline = null,
    CancellationToken CancellationToken = default,
    IReadOnlyList<KeyValuePair<string, string>>? Headers = null)
{
    public static CallOptions WithTimeout(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        new(DateTime.UtcNow + timeout, cancellationToken);
}
