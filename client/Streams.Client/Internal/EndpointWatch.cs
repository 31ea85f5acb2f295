using Streams.Contracts.Controller;

namespace Streams.Client.Internal;

/// <summary>
/// Asks the controller, while a writer waits on a segment store (connecting, or for its setup answer), whether the
/// segment still lives there; <see cref="Token"/> is cancelled as soon as the controller names another store, or none.
/// <para>
/// Why. A frozen store's kernel still accepts connections, so a writer that reconnects to it waits out a whole hello
/// timeout per attempt, and may start one more attempt there just before the store's containers move: writes would
/// resume a keep-alive timeout after the move instead of at once. Polling only while a setup is pending costs one
/// cheap controller call per <see cref="Interval"/> per waiting segment, and nothing on a healthy connection.
/// </para>
/// </summary>
internal sealed class EndpointWatch : IDisposable
{
    /// <summary>How often the controller is asked: well under the 5 s a failover may take, yet a trickle of calls.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly CancellationTokenSource _cancel;
    private volatile bool _moved;

    private EndpointWatch(CancellationToken cancellationToken) => _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

    /// <summary>Cancelled when the segment moved away from the watched store, or when the caller's token is.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>Whether <see cref="Token"/> was cancelled because the segment moved.</summary>
    public bool HasMoved => _moved;

    /// <summary>Starts watching <paramref name="segment"/>, which the controller last placed at <paramref name="endpoint"/>.</summary>
    public static EndpointWatch Start(ControllerClient controller, string segment, SegmentEndpoint endpoint, CancellationToken cancellationToken)
    {
        var watch = new EndpointWatch(cancellationToken);
        _ = watch.PollAsync(controller, segment, endpoint);
        return watch;
    }

    public void Dispose()
    {
        _cancel.Cancel();
        _cancel.Dispose();
    }

    private async Task PollAsync(ControllerClient controller, string segment, SegmentEndpoint endpoint)
    {
        var token = _cancel.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                await Task.Delay(Interval, token);
                SegmentEndpoint now;
                try
                {
                    now = await controller.GetEndpointAsync(segment, token);
                }
                catch (StreamsException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable)
                {
                    // No store serves it at the moment (its owner's registration is gone), or no controller answers:
                    // keep waiting where we are; the next answer decides.
                    continue;
                }

                if (now.Host != endpoint.Host || now.DataPort != endpoint.DataPort || now.GrpcUri != endpoint.GrpcUri)
                {
                    _moved = true;
                    await _cancel.CancelAsync();
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or StreamsException)
        {
            // The wait is over (or the controller refuses the segment, which the setup itself reports).
        }
    }

    /// <summary>A setup abandoned because its segment moved to another store: retry there at once.</summary>
    public sealed class MovedException() : Exception("The segment moved to another segment store.");
}
