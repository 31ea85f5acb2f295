using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Coordination.Cluster;
using Streams.Common.Server.Grpc;
using Streams.Coordination.Metadata;
using Streams.Controller;
using Streams.Controller.Cluster;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Scaling;
using Streams.Controller.Server;
using Streams.Controller.Streams;
using Streams.Controller.Transactions;

namespace Streams.Hosting;

/// <summary>
/// <c>streams controller</c>: the stream API, the KEDA scaler and metrics. Several may run; all serve requests (stream
/// metadata changes are compare-and-set in ZooKeeper) and one, elected, assigns containers to segment stores, applies
/// retention, takes the segment stores' load reports and decides scales, and finishes operations a crashed controller
/// left half done. Clients list every controller and move to the next when one is unavailable; segment stores follow
/// the container assignment in ZooKeeper, so they follow whichever leads, and call a controller only to report load (a
/// follower refuses the report, and the store tries another).
/// <para>
/// A dead leader is replaced once ZooKeeper expires its session, so the controller's session timeout is what a
/// takeover costs: by default it is <see cref="DefaultSessionTimeout"/>, shorter than the other roles'.
/// </para>
/// </summary>
public sealed class ControllerHost : IAsyncDisposable
{
    /// <summary>
    /// The controller's ZooKeeper session timeout unless ZooKeeper:SessionTimeout is set. A spurious expiry (a long GC
    /// pause) costs a controller little: leadership moves, and nothing is fenced or recovered. 4 s is also the shortest
    /// session a ZooKeeper server grants with its default tickTime of 2 s (minSessionTimeout is two ticks).
    /// </summary>
    public static readonly TimeSpan DefaultSessionTimeout = TimeSpan.FromSeconds(4);

    private readonly WebApplication _app;
    private readonly ZooKeeperMetadataStore _zookeeper;
    private readonly ClusterView _view;
    private readonly GrpcSegmentStoreAdmin _admin;
    private readonly RoleTelemetry _telemetry;
    private readonly CancellationTokenSource _stop;
    private readonly Task _election;

    private ControllerHost(WebApplication app, ZooKeeperMetadataStore zookeeper, ClusterView view, GrpcSegmentStoreAdmin admin, RoleTelemetry telemetry, CancellationTokenSource stop, Task election)
    {
        (_app, _zookeeper, _view, _admin, _telemetry, _stop, _election) = (app, zookeeper, view, admin, telemetry, stop, election);
    }

    public static async Task<ControllerHost> StartAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var settings = ServerConfiguration.Bind<ServerSettings>(configuration, "Server");
        settings.Validate();
        var controllerOptions = ServerConfiguration.Bind<ControllerOptions>(configuration, "Controller");
        controllerOptions.Validate();
        var scaling = ScalingConfiguration.Read(configuration);
        var containerCount = configuration.GetValue("Cluster:ContainerCount", 8);
        if (containerCount is < 1 or > 4096)
        {
            throw new ArgumentException($"Cluster:ContainerCount must be between 1 and 4096 (is {containerCount}).");
        }

        var logger = loggerFactory.CreateLogger<ControllerHost>();
        var telemetry = RoleTelemetry.Start(configuration, "controller");
        var zooKeeperSettings = ServerConfiguration.Bind<ZooKeeperSettings>(configuration, "ZooKeeper");
        if (configuration["ZooKeeper:SessionTimeout"] is null)
        {
            zooKeeperSettings = zooKeeperSettings with { SessionTimeout = DefaultSessionTimeout };
        }

        var zookeeper = await zooKeeperSettings.ConnectAsync(logger, cancellationToken);
        var config = await EnsureClusterConfigAsync(zookeeper, containerCount, cancellationToken);
        var view = new ClusterView(zookeeper, config.ContainerCount, loggerFactory.CreateLogger<ClusterView>());
        await view.StartAsync(cancellationToken);
        var admin = new GrpcSegmentStoreAdmin(view, config.ContainerCount, controllerOptions.SegmentOperationTimeout);
        var streams = new StreamMetadataStore(zookeeper);
        var election = new LeaderElection(zookeeper, ClusterPaths.ControllerLeader, settings.GrpcUri, logger);
        // Load reports count only on the leader: a follower answers accepted = false and the segment store moves on.
        ControllerService? controllerOfLoads = null;
        var loads = new SegmentLoadTracker((scope, stream) => controllerOfLoads?.Known(scope, stream), () => election.IsLeader);
        var controller = new ControllerService(streams, admin, view, controllerOptions, loggerFactory.CreateLogger<ControllerService>(), loads);
        controllerOfLoads = controller;
        var groups = new ReaderGroupService(zookeeper, controller, () => election.IsLeader, loggerFactory.CreateLogger<ReaderGroupService>());
        var transactions = new TransactionService(zookeeper, admin, ServerConfiguration.Bind<TransactionOptions>(configuration, "Transactions"), loggerFactory.CreateLogger<TransactionService>());
        var controllerMetrics = new ControllerMetrics(controller, loads, groups);
        telemetry.Own(controllerMetrics);

        var stop = new CancellationTokenSource();
        var retention = new RetentionService(controller, streams, controllerOptions.RetentionInterval, loggerFactory.CreateLogger<RetentionService>(), groups);
        var evaluator = new ScaleEvaluator(controller, loads, scaling, controllerMetrics, loggerFactory.CreateLogger<ScaleEvaluator>());
        var watchdog = new TransitionWatchdog(controller, controllerOptions.ScaleStepTimeout, loggerFactory.CreateLogger<TransitionWatchdog>());
        var balancer = new ContainerBalancer(zookeeper, config.ContainerCount, loggerFactory.CreateLogger<ContainerBalancer>());
        var leading = Task.Run(() => election.RunAsync(async leadership =>
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await controller.RecoverAsync(leadership);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning("Finishing half-done stream operations failed ({Error}); the next leader retries.", e.Message);
                }
            }, CancellationToken.None);
            await Task.WhenAll(balancer.RunAsync(leadership), retention.RunAsync(leadership), evaluator.RunAsync(leadership), watchdog.RunAsync(leadership), groups.RunAsync(leadership), transactions.RunAsync(leadership));
        }, stop.Token), CancellationToken.None);

        var app = RoleServer.Build(settings, loggerFactory,
            services => services.AddSingleton(new GrpcControllerService(controller, loads)).AddSingleton(new GrpcReaderGroupsService(groups)).AddSingleton(new GrpcTransactionsService(transactions)).AddSingleton(new ExternalScalerService(controller, groups)),
            endpoints =>
            {
                endpoints.MapGrpcService<GrpcControllerService>();
                endpoints.MapGrpcService<GrpcReaderGroupsService>();
                endpoints.MapGrpcService<GrpcTransactionsService>();
                endpoints.MapGrpcService<ExternalScalerService>();
            },
            [
                new ReadinessCheck("metadata", () => zookeeper.IsConnected
                        ? HealthCheckResult.Healthy(election.IsLeader ? "ZooKeeper connected, leading" : "ZooKeeper connected")
                        : HealthCheckResult.Unhealthy("ZooKeeper not connected"),
                    [RoleServices.Controller, RoleServices.ReaderGroups, RoleServices.Transactions, RoleServices.ExternalScaler]),
            ],
            telemetry.Meters,
            data: null);
        await RoleServer.StartAsync(app, settings, cancellationToken);
        return new ControllerHost(app, zookeeper, view, admin, telemetry, stop, leading);
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _election;
        await RoleServer.StopAsync(_app);
        _telemetry.Dispose();
        await _view.DisposeAsync();
        _admin.Dispose();
        await _zookeeper.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>The first controller records the container count; later ones (and segment stores) must agree with it.</summary>
    private static async Task<ClusterConfig> EnsureClusterConfigAsync(IMetadataStore store, int containerCount, CancellationToken cancellationToken)
    {
        await store.TryCreateAsync(ClusterPaths.Config, ClusterPaths.Serialize(new ClusterConfig(containerCount)), cancellationToken);
        var config = ClusterPaths.Deserialize<ClusterConfig>((await store.GetAsync(ClusterPaths.Config, cancellationToken))!.Value.Data);
        if (config.ContainerCount != containerCount)
        {
            throw new InvalidOperationException(
                $"This cluster was created with {config.ContainerCount} containers; this controller is configured with {containerCount}. Set Cluster:ContainerCount (--containers) to {config.ContainerCount}.");
        }

        return config;
    }
}
