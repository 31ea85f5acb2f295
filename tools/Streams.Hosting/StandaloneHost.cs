using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Bookie;
using Streams.Bookie.Storage;
using Streams.Common.Server.Grpc;
using Streams.Coordination.Metadata;
using Streams.Controller;
using Streams.Controller.ReaderGroups;
using Streams.Controller.Scaling;
using Streams.Controller.Server;
using Streams.Controller.Streams;
using Streams.Controller.Transactions;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.SegmentStore;
using Streams.SegmentStore.Load;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Server;
using Streams.Tier2;

namespace Streams.Hosting;

/// <summary>
/// <c>streams standalone</c>: the controller and a segment store in one process, durable under one data directory:
/// <c>metadata/</c> (streams, scopes, ledgers, container logs) and <c>bookie/</c> (the journal of the in-process bookie).
/// It serves gRPC (every API, health and reflection), the raw data carrier, and HTTP /metrics, /healthz and /readyz.
/// </summary>
public sealed class StandaloneHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IMetadataStore _metadata;
    private readonly SegmentStoreService _store;
    private readonly BookieStore _bookie;
    private readonly RoleTelemetry _telemetry;
    private readonly CancellationTokenSource _stop = new();
    private Task _retention = Task.CompletedTask;
    private Task _scaling = Task.CompletedTask;

    private StandaloneHost(WebApplication app, IMetadataStore metadata, BookieStore bookie, SegmentStoreService store, RoleTelemetry telemetry, ServerSettings settings, string dataDirectory)
    {
        _bookie = bookie;
        _app = app;
        _metadata = metadata;
        _store = store;
        _telemetry = telemetry;
        Settings = settings;
        DataDirectory = dataDirectory;
    }

    public ServerSettings Settings { get; }

    public string DataDirectory { get; }

    /// <summary>Bytes the segment store holds that are not in Tier 2 yet.</summary>
    public long UnflushedBytes => _store.UnflushedBytes;

    /// <summary>Recovers the data directory and starts serving. Throws with a clear message on bad settings or busy ports.</summary>
    public static async Task<StandaloneHost> StartAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var settings = ServerConfiguration.Bind<ServerSettings>(configuration, "Server");
        settings.Validate();
        var dataDirectory = Path.GetFullPath(configuration["DataDirectory"] ?? "./streams-data");
        var storeOptions = ServerConfiguration.Bind<SegmentStoreOptions>(configuration, "SegmentStore") with
        {
            DataDirectory = Path.Combine(dataDirectory, "segmentstore"),
        };
        var controllerOptions = ServerConfiguration.Bind<ControllerOptions>(configuration, "Controller");
        storeOptions.Validate();
        controllerOptions.Validate();
        var scaling = ScalingConfiguration.Read(configuration);
        var loadOptions = ServerConfiguration.Bind<SegmentLoadOptions>(configuration, "Scaling");
        loadOptions.Validate();

        var logger = loggerFactory.CreateLogger<StandaloneHost>();
        var telemetry = RoleTelemetry.Start(configuration, "standalone");
        var metadata = FileMetadataStore.Open(Path.Combine(dataDirectory, "metadata"));

        // One bookie in this process; containers log to ledgers on it (E = Qw = Qa = 1) through the cluster's code path.
        var bookieOptions = ServerConfiguration.Bind<BookieOptions>(configuration, "Bookie") with { DataDirectory = Path.Combine(dataDirectory, "bookie") };
        bookieOptions.Validate();
        var bookie = await BookieStore.OpenAsync(bookieOptions, loggerFactory.CreateLogger<BookieStore>(), cancellationToken);
        var bookies = new BookieDirectory(metadata, TimeSpan.FromSeconds(10));
        bookies.AddLocal(new LocalBookieClient("standalone", bookie));
        // The one bookie is in this process: there is no other to turn to, and a slow disk is not a failed bookie, so the
        // deadlines only catch a journal that stopped (a short one would turn a slow fsync into a container restart).
        var ledgers = new LedgerManager(metadata, bookies, new LedgerOptions
        {
            EnsembleSize = 1, WriteQuorum = 1, AckQuorum = 1, AddTimeout = TimeSpan.FromSeconds(60), ReadTimeout = TimeSpan.FromSeconds(60),
        }, loggerFactory.CreateLogger<LedgerManager>());
        // Tier 2 defaults to a directory next to the rest of the data; "none" keeps everything in Tier 1.
        // The one controller in this process always leads: it takes the segment store's load reports directly.
        ControllerService? controllerOfLoads = null;
        var loads = new SegmentLoadTracker((scope, stream) => controllerOfLoads?.Known(scope, stream), () => true);
        var loadSink = new LocalLoadSink(loads);
        var tier2 = ChunkStorageFactory.OpenOrNone(string.IsNullOrWhiteSpace(storeOptions.Tier2) ? "file://" + Path.Combine(dataDirectory, "tier2") : storeOptions.Tier2);
        logger.LogInformation("Tier 2: {Tier2}", tier2?.Location ?? "none (all data stays in Tier 1)");
        var store = new SegmentStoreService(
            storeOptions,
            id => new LedgerDurableDataLog(id, ledgers, storeOptions.LedgerRolloverSize.Bytes, storeOptions.RecoveryReadAhead.Bytes, loggerFactory.CreateLogger<LedgerDurableDataLog>()),
            loggerFactory,
            tier2,
            loadSink,
            loadOptions) { Name = "standalone" };
        try
        {
            await store.StartAsync(cancellationToken);
        }
        catch
        {
            await store.DisposeAsync();
            await bookie.DisposeAsync();
            await metadata.DisposeAsync();
            telemetry.Dispose();
            throw;
        }

        telemetry.Own(SegmentStoreMetrics.Observe(() => store.Cache.Size, () => store.RunningContainers.Count(), () => store.UnflushedBytes, () => store.ChunkCache.Size));
        telemetry.Own(BookieMetrics.Observe(() => bookie.JournalBytes, () => bookie.LedgerCount));
        var requests = new SegmentRequests(store);
        var streams = new StreamMetadataStore(metadata);
        var controller = new ControllerService(
            streams,
            new LocalSegmentStoreAdmin(requests, controllerOptions.SegmentOperationTimeout),
            new FixedSegmentLocator(settings),
            controllerOptions,
            loggerFactory.CreateLogger<ControllerService>(),
            loads);
        controllerOfLoads = controller;
        await controller.RecoverAsync(cancellationToken);
        // The only controller leads always.
        var groups = new ReaderGroupService(metadata, controller, () => true, loggerFactory.CreateLogger<ReaderGroupService>());
        var transactions = new TransactionService(metadata, new LocalSegmentStoreAdmin(requests, controllerOptions.SegmentOperationTimeout),
            ServerConfiguration.Bind<TransactionOptions>(configuration, "Transactions"), loggerFactory.CreateLogger<TransactionService>());
        var controllerMetrics = new ControllerMetrics(controller, loads, groups);
        telemetry.Own(controllerMetrics);

        var app = RoleServer.Build(
            settings,
            loggerFactory,
            services => services
                .AddSegmentStoreGrpc(requests)
                .AddSingleton(new GrpcControllerService(controller, loads))
                .AddSingleton(new GrpcReaderGroupsService(groups))
                .AddSingleton(new GrpcTransactionsService(transactions))
                .AddSingleton(new ExternalScalerService(controller, groups)),
            endpoints =>
            {
                endpoints.MapGrpcService<GrpcControllerService>();
                endpoints.MapGrpcService<GrpcReaderGroupsService>();
                endpoints.MapGrpcService<GrpcTransactionsService>();
                endpoints.MapGrpcService<GrpcSegmentStoreService>();
                endpoints.MapGrpcService<ExternalScalerService>();
            },
            [
                new ReadinessCheck("containers", () => store.RunningContainers.Count() is var running && running == store.ContainerCount
                        ? HealthCheckResult.Healthy($"{running}/{store.ContainerCount} containers running")
                        : HealthCheckResult.Unhealthy($"{running}/{store.ContainerCount} containers running"),
                    [RoleServices.SegmentStore, RoleServices.Controller, RoleServices.ReaderGroups, RoleServices.Transactions, RoleServices.ExternalScaler]),
                new ReadinessCheck("journal", () => bookie.CheckHealth("bookie"), [RoleServices.SegmentStore]),
            ],
            telemetry.Meters,
            listen => listen.UseConnectionHandler<DataConnectionHandler>());

        var host = new StandaloneHost(app, metadata, bookie, store, telemetry, settings, dataDirectory);
        var retention = new RetentionService(controller, streams, controllerOptions.RetentionInterval, loggerFactory.CreateLogger<RetentionService>(), groups);
        var watchdog = new TransitionWatchdog(controller, controllerOptions.ScaleStepTimeout, loggerFactory.CreateLogger<TransitionWatchdog>());
        host._retention = Task.WhenAll(
            Task.Run(() => retention.RunAsync(host._stop.Token), CancellationToken.None),
            Task.Run(() => watchdog.RunAsync(host._stop.Token), CancellationToken.None),
            Task.Run(() => transactions.RunAsync(host._stop.Token), CancellationToken.None));
        var evaluator = new ScaleEvaluator(controller, loads, scaling, controllerMetrics, loggerFactory.CreateLogger<ScaleEvaluator>());
        host._scaling = Task.WhenAll(
            Task.Run(() => evaluator.RunAsync(host._stop.Token), CancellationToken.None),
            Task.Run(() => groups.RunAsync(host._stop.Token), CancellationToken.None));
        try
        {
            await RoleServer.StartAsync(app, settings, cancellationToken);
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }

        logger.LogInformation("Data directory: {DataDirectory}", dataDirectory);
        return host;
    }

    /// <summary>Runs until Ctrl-C or SIGTERM.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _retention;
        await _scaling;
        await RoleServer.StopAsync(_app);
        _telemetry.Dispose(); // before the stores its gauges observe
        await _store.DisposeAsync();
        await _bookie.DisposeAsync();
        await _metadata.DisposeAsync();
        _stop.Dispose();
    }
}
