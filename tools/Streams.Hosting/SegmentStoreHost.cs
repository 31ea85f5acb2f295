using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Coordination.Cluster;
using Streams.Common.Server.Grpc;
using Streams.Coordination.Metadata;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.SegmentStore;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Server;
using Streams.Tier2;

namespace Streams.Hosting;

/// <summary>
/// <c>streams segmentstore</c>: serves the segments of the containers the controller assigns it. Container logs are
/// ledgers on the cluster's bookies; the store registers at /cluster/segmentstores/{host:grpc-port} while it runs.
/// </summary>
public sealed class SegmentStoreHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SegmentStoreService _service;
    private readonly BookieDirectory _bookies;
    private readonly ZooKeeperMetadataStore _zookeeper;
    private readonly EphemeralRegistration _registration;
    private readonly RoleTelemetry _telemetry;
    private readonly CancellationTokenSource _stop;
    private readonly Task _ownership;
    private readonly ControllerLoadSink _loadSink;

    private SegmentStoreHost(
        WebApplication app, SegmentStoreService service, BookieDirectory bookies, ZooKeeperMetadataStore zookeeper, EphemeralRegistration registration,
        RoleTelemetry telemetry, CancellationTokenSource stop, Task ownership, string storeId, ControllerLoadSink loadSink)
    {
        (_app, _service, _bookies, _zookeeper, _registration, _telemetry, _stop, _ownership, StoreId, _loadSink) =
            (app, service, bookies, zookeeper, registration, telemetry, stop, ownership, storeId, loadSink);
    }

    public string StoreId { get; }

    public static async Task<SegmentStoreHost> StartAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var settings = ServerConfiguration.Bind<ServerSettings>(configuration, "Server");
        settings.Validate();
        var logger = loggerFactory.CreateLogger<SegmentStoreHost>();
        var telemetry = RoleTelemetry.Start(configuration, "segmentstore");
        var zookeeper = await ServerConfiguration.Bind<ZooKeeperSettings>(configuration, "ZooKeeper").ConnectAsync(logger, cancellationToken);
        var cluster = await WaitForClusterConfigAsync(zookeeper, logger, cancellationToken);
        var storeOptions = ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore") with { ContainerCount = cluster.ContainerCount };
        storeOptions.Validate();
        var ledgerOptions = ServerConfiguration.Bind<LedgerOptions>(configuration, "Ledger");
        ledgerOptions.Validate();
        var loadOptions = ServerConfiguration.Bind<SegmentLoadOptions>(configuration, "Scaling");
        loadOptions.Validate();

        var bookies = new BookieDirectory(zookeeper, ledgerOptions);
        var ledgers = new LedgerManager(zookeeper, bookies, ledgerOptions, loggerFactory.CreateLogger<LedgerManager>());
        // Every segment store of a cluster must use the same Tier 2: a container's new owner reads its chunks.
        var tier2 = ChunkStorageFactory.OpenOrNone(storeOptions.Tier2);
        if (tier2 is null)
        {
            logger.LogWarning("No Tier 2 (--tier2): containers keep all their data in Tier 1, and their logs are never truncated.");
        }
        else
        {
            logger.LogInformation("Tier 2: {Tier2}", tier2.Location);
        }

        var storeId = $"{settings.Advertised}:{settings.GrpcPort}";
        var loadSink = new ControllerLoadSink(zookeeper, loggerFactory.CreateLogger<ControllerLoadSink>());
        var service = new SegmentStoreService(
            storeOptions,
            id => new LedgerDurableDataLog(id, ledgers, storeOptions.LedgerRolloverSize.Bytes, storeOptions.RecoveryReadAhead.Bytes, loggerFactory.CreateLogger<LedgerDurableDataLog>()),
            loggerFactory,
            tier2,
            loadSink,
            loadOptions) { Name = storeId };
        telemetry.Own(SegmentStoreMetrics.Observe(() => service.Cache.Size, () => service.RunningContainers.Count(), () => service.UnflushedBytes, () => service.ChunkCache.Size));
        var requests = new SegmentRequests(service);
        var ownership = new ContainerOwnership(service, zookeeper, storeId, loggerFactory.CreateLogger<ContainerOwnership>());

        var app = RoleServer.Build(settings, loggerFactory,
            services => services.AddSegmentStoreGrpc(requests),
            endpoints => endpoints.MapGrpcService<GrpcSegmentStoreService>(),
            [
                new ReadinessCheck("metadata", () => zookeeper.IsConnected ? HealthCheckResult.Healthy("ZooKeeper connected") : HealthCheckResult.Unhealthy("ZooKeeper not connected"),
                    [RoleServices.SegmentStore]),
                new ReadinessCheck("containers", () =>
                    {
                        var detail = $"segment store {storeId}: owns containers [{string.Join(", ", ownership.Owned.Order())}], running {service.RunningContainers.Count()}";
                        return ownership.Owned.All(service.IsRunning) ? HealthCheckResult.Healthy(detail) : HealthCheckResult.Unhealthy(detail);
                    },
                    [RoleServices.SegmentStore]),
            ],
            telemetry.Meters,
            listen => listen.UseConnectionHandler<DataConnectionHandler>());
        await RoleServer.StartAsync(app, settings, cancellationToken);

        // Registered once it serves; the controller then assigns it containers.
        var registration = new EphemeralRegistration(zookeeper, ClusterPaths.SegmentStore(storeId),
            ClusterPaths.Serialize(new SegmentStoreRegistration(storeId, settings.Advertised, settings.DataPort, settings.GrpcUri, Guid.NewGuid().ToString("N"))), logger);
        await registration.StartAsync(cancellationToken);
        var stop = new CancellationTokenSource();
        var following = Task.Run(() => ownership.RunAsync(stop.Token), CancellationToken.None);
        return new SegmentStoreHost(app, service, bookies, zookeeper, registration, telemetry, stop, following, storeId, loadSink);
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _ownership;
        await _registration.DisposeAsync();
        await RoleServer.StopAsync(_app);
        _telemetry.Dispose();
        await _service.DisposeAsync();
        _loadSink.Dispose();
        await _bookies.DisposeAsync();
        await _zookeeper.DisposeAsync();
        _stop.Dispose();
    }

    private static async Task<ClusterConfig> WaitForClusterConfigAsync(IMetadataStore store, ILogger logger, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            var (value, changed) = await store.GetAndWatchAsync(ClusterPaths.Config, cancellationToken);
            if (value is { } config)
            {
                return ClusterPaths.Deserialize<ClusterConfig>(config.Data);
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("No cluster configuration appeared in ZooKeeper within 2 minutes: start a controller (`streams controller`) first.");
            }

            logger.LogInformation("Waiting for a controller to write the cluster configuration ({Path}).", ClusterPaths.Config);
            await Task.WhenAny(changed, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken));
        }
    }
}
