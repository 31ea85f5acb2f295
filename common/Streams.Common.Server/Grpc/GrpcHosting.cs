using Grpc.AspNetCore.Server.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Streams.Common.Grpc;

namespace Streams.Common.Server.Grpc;

/// <summary>A readiness check of a role, and the gRPC services whose health it decides.</summary>
/// <param name="Name">Short name, shown by the HTTP readiness endpoint.</param>
/// <param name="Check">Healthy or not, with a one-line reason.</param>
/// <param name="Services">Fully qualified gRPC service names (e.g. "streams.controller.v1.Controller") it gates.</param>
public sealed record ReadinessCheck(string Name, Func<HealthCheckResult> Check, IReadOnlyList<string> Services);

/// <summary>
/// gRPC on Grpc.AspNetCore as every Streams role serves it: generated services bound with start-up checks
/// (<see cref="GeneratedServiceMethodProvider{TService}"/>), errors as documented statuses and shutdown as UNAVAILABLE
/// (<see cref="ErrorInterceptor"/>), 16 MiB messages, server reflection, and the standard health service whose status
/// per service name follows the role's readiness checks (Check answers from the checks; Watch pushes a change within
/// about a second).
/// </summary>
public static class GrpcHosting
{
    /// <summary>How often the readiness checks run for health Watch calls.</summary>
    private static readonly TimeSpan HealthPeriod = TimeSpan.FromSeconds(1);

    public static IServiceCollection AddStreamsGrpc(this IServiceCollection services, IReadOnlyList<ReadinessCheck> readiness)
    {
        services.AddGrpc(options =>
        {
            options.MaxReceiveMessageSize = GrpcChannels.MaxMessageSize;
            options.MaxSendMessageSize = GrpcChannels.MaxMessageSize;
            options.EnableDetailedErrors = false;
            options.Interceptors.Add<ErrorInterceptor>();
        });

        // Our binder replaces Grpc.AspNetCore's for generated services; the provider for ServerServiceDefinition stays.
        var binder = services.First(d => d.ServiceType == typeof(IServiceMethodProvider<>)
            && d.ImplementationType?.Name.StartsWith("BinderServiceMethodProvider", StringComparison.Ordinal) == true);
        services.Remove(binder);
        services.TryAddEnumerable(ServiceDescriptor.Singleton(typeof(IServiceMethodProvider<>), typeof(GeneratedServiceMethodProvider<>)));

        services.AddGrpcReflection();
        var health = services.AddGrpcHealthChecks(options =>
        {
            // "" is the whole server: healthy when every check is.
            options.Services.Map(string.Empty, _ => true);
            foreach (var service in readiness.SelectMany(c => c.Services).Distinct(StringComparer.Ordinal))
            {
                options.Services.Map(service, registration => registration.Tags.Contains(service));
            }
        });
        foreach (var check in readiness)
        {
            health.AddCheck(check.Name, new DelegateCheck(check.Check), tags: check.Services);
        }

        services.Configure<HealthCheckPublisherOptions>(options =>
        {
            options.Delay = TimeSpan.Zero;
            options.Period = HealthPeriod;
        });
        return services;
    }

    /// <summary>Maps the health and reflection services next to the role's own.</summary>
    public static void MapStreamsGrpc(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcHealthChecksService();
        endpoints.MapGrpcReflectionService();
    }

    private sealed class DelegateCheck(Func<HealthCheckResult> check) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(check());
    }
}
