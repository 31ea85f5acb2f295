using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Common.Grpc.Client;
using Streams.Contracts.Controller;

namespace Streams.Client.Internal;

/// <summary>Calls the controller; retries calls that failed because it was briefly unreachable.</summary>
internal sealed class ControllerClient : IDisposable
{
    private const int Attempts = 5;

    private readonly GrpcChannel _channel;
    private readonly TimeSpan _timeout;

    public ControllerClient(string uri, TimeSpan timeout)
    {
        _channel = GrpcChannel.ForAddress(uri);
        _timeout = timeout;
    }

    public Task<TResponse> CallAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, CancellationToken cancellationToken) =>
        CallAsync(method, request, idempotent: true, cancellationToken);

    public async Task<TResponse> CallAsync<TRequest, TResponse>(Method<TRequest, TResponse> method, TRequest request, bool idempotent, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await _channel.UnaryAsync(method, request, CallOptions.WithTimeout(_timeout, cancellationToken));
            }
            catch (RpcException e) when (idempotent && e.StatusCode == StatusCode.Unavailable && attempt < Attempts && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(delay, cancellationToken);
                delay *= 2;
            }
            catch (RpcException e)
            {
                throw StreamsException.From(e);
            }
        }
    }

    public Task<SegmentEndpoint> GetEndpointAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync(ControllerApi.GetSegmentEndpoint, new SegmentRef { Segment = segment }, cancellationToken);

    public Task<ActiveSegments> GetActiveSegmentsAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync(ControllerApi.GetActiveSegments, new StreamRef { Scope = scope, Stream = stream }, cancellationToken);

    public void Dispose() => _channel.Dispose();
}
