using System.Collections.Concurrent;
using Streams.Common.Contracts;
using Streams.Common.Grpc;
using Streams.Contracts.Health;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// grpc.health.v1.Health: "" names the whole server; each registered service reports its own status.
/// Unknown service names answer NOT_FOUND, as the protocol requires.
/// </summary>
internal sealed class HealthService
{
    private readonly ConcurrentDictionary<string, HealthCheckResponse.Types.ServingStatus> _statuses = new(StringComparer.Ordinal);

    public HealthService()
    {
        _statuses[string.Empty] = HealthCheckResponse.Types.ServingStatus.Serving;
    }

    public void SetStatus(string service, bool serving) =>
        _statuses[service] = serving ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;

    public void Register(GrpcServer server)
    {
        server.AddUnary(HealthApi.Check, (request, _) =>
            _statuses.TryGetValue(request.Service, out var status)
                ? ValueTask.FromResult(new HealthCheckResponse { Status = status })
                : throw new RpcException(StatusCode.NotFound, $"Unknown service '{request.Service}'."));

        server.AddServerStreaming(HealthApi.Watch, async (request, responses, context) =>
        {
            HealthCheckResponse.Types.ServingStatus? last = null;
            while (!context.CancellationToken.IsCancellationRequested)
            {
                var status = _statuses.TryGetValue(request.Service, out var s) ? s : HealthCheckResponse.Types.ServingStatus.ServiceUnknown;
                if (status != last)
                {
                    await responses.WriteAsync(new HealthCheckResponse { Status = status }, context.CancellationToken);
                    last = status;
                }

                await Task.Delay(TimeSpan.FromSeconds(1), context.CancellationToken);
            }
        });
    }
}
