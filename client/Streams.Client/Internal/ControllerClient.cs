using System.Diagnostics;
using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using GeneratedClient = Streams.Contracts.Controller.Controller.ControllerClient;

namespace Streams.Client.Internal;

/// <summary>Calls the controller; retries idempotent calls that failed because it was briefly unreachable.</summary>
internal sealed class ControllerClient : IDisposable
{
    private const int Attempts = 5;

    private readonly GrpcChannel _channel;
    private readonly GeneratedClient _client;
    private readonly TimeSpan _timeout;

    public ControllerClient(string uri, TimeSpan timeout)
    {
        _channel = GrpcChannels.Create(uri);
        _client = new GeneratedClient(_channel);
        _timeout = timeout;
    }

    /// <summary>
    /// Makes a call with the client's timeout; retries it while the controller is UNAVAILABLE if <paramref name="idempotent"/>.
    /// The call, retries included, is one span named after <paramref name="method"/>, the SDK method that makes it.
    /// </summary>
    public async Task<TResponse> CallAsync<TResponse>(
        Func<GeneratedClient, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken cancellationToken, bool idempotent = true, [CallerMemberName] string method = "")
    {
        using var activity = ClientTracing.StartCall(method);
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call(_client, GrpcChannels.Deadline(_timeout, cancellationToken));
            }
            catch (RpcException e) when (idempotent && e.StatusCode == StatusCode.Unavailable && attempt < Attempts && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(delay, cancellationToken);
                delay *= 2;
            }
            catch (RpcException e)
            {
                activity?.SetStatus(ActivityStatusCode.Error, e.Status.Detail);
                throw StreamsException.From(e);
            }
        }
    }

    public Task<SegmentEndpoint> GetEndpointAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.GetSegmentEndpointAsync(new SegmentRef { Segment = segment }, o), cancellationToken);

    public Task<ActiveSegments> GetActiveSegmentsAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.GetActiveSegmentsAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);

    public Task<StreamInfo> DescribeStreamAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.DescribeStreamAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);

    public void Dispose() => _channel.Dispose();
}
