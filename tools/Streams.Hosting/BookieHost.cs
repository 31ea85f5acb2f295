using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Bookie;
using Streams.Bookie.Server;
using Streams.Bookie.Storage;
using Streams.Coordination.Cluster;
using Streams.Common.Server.Grpc;
using Streams.Coordination.Metadata;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.Ledger.Recovery;

namespace Streams.Hosting;

/// <summary>
/// <c>streams bookie</c>: a storage node. Its journal lives in the data directory; it serves the raw carrier (for
/// ledger clients) and gRPC, and registers at /bookies/available/{host:data-port} while it runs. It also runs ledger
/// auto-recovery (AutoRecovery section): the bookies elect one auditor among themselves and each repairs ledgers that
/// lost a bookie for good. It runs here, as BookKeeper's auto-recovery daemon does, because the work is copying
/// entries between bookies: it grows with the bookies, and the controller needs no ledger client.
/// </summary>
public sealed class BookieHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly BookieStore _store;
    private readonly ZooKeeperMetadataStore _zookeeper;
    private readonly EphemeralRegistration _registration;
    private readonly RoleTelemetry _telemetry;
    private readonly BookieDirectory _peers;
    private readonly LedgerAutoRecovery? _recovery;

    private BookieHost(WebApplication app, BookieStore store, ZooKeeperMetadataStore zookeeper, EphemeralRegistration registration, RoleTelemetry telemetry, BookieDirectory peers, LedgerAutoRecovery? recovery, string bookieId)
    {
        (_app, _store, _zookeeper, _registration, _telemetry, _peers, _recovery, BookieId) = (app, store, zookeeper, registration, telemetry, peers, recovery, bookieId);
    }

    public string BookieId { get; }

    public static async Task<BookieHost> StartAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var settings = ServerConfiguration.Bind<ServerSettings>(configuration, "Server");
        settings.Validate();
        var options = ServerConfiguration.Bind<BookieOptions>(configuration, "Bookie");
        options.Validate();
        var recoveryOptions = ServerConfiguration.Bind<AutoRecoveryOptions>(configuration, "AutoRecovery");
        recoveryOptions.Validate();
        var ledgerOptions = ServerConfiguration.Bind<LedgerOptions>(configuration, "Ledger");
        ledgerOptions.Validate();
        var logger = loggerFactory.CreateLogger<BookieHost>();
        var telemetry = RoleTelemetry.Start(configuration, "bookie");
        var zookeeper = await ServerConfiguration.Bind<ZooKeeperSettings>(configuration, "ZooKeeper").ConnectAsync(logger, cancellationToken);
        var store = await BookieStore.OpenAsync(options, loggerFactory.CreateLogger<BookieStore>(), cancellationToken);
        telemetry.Own(BookieMetrics.Observe(() => store.JournalBytes, () => store.LedgerCount));

        var bookieId = $"{settings.Advertised}:{settings.DataPort}";
        var app = RoleServer.Build(settings, loggerFactory,
            services => services.AddSingleton(store).AddSingleton(new GrpcBookieService(store)),
            endpoints => endpoints.MapGrpcService<GrpcBookieService>(),
            [
                new ReadinessCheck("journal", () => store.CheckHealth($"bookie {bookieId}"), [RoleServices.Bookie]),
            ],
            telemetry.Meters,
            listen => listen.UseConnectionHandler<BookieConnectionHandler>());
        await RoleServer.StartAsync(app, settings, cancellationToken);

        // Registered only once it serves: ledger clients pick bookies from this list.
        var registration = new EphemeralRegistration(zookeeper, $"{BookieDirectory.AvailablePath}/{bookieId}", System.Text.Encoding.UTF8.GetBytes(bookieId), logger);
        await registration.StartAsync(cancellationToken);

        // Auto-recovery reaches the other bookies (and this one) as any ledger client does.
        var peers = new BookieDirectory(zookeeper, ledgerOptions);
        LedgerAutoRecovery? recovery = null;
        if (recoveryOptions.Enabled)
        {
            recovery = LedgerAutoRecovery.Start(zookeeper, peers, bookieId, recoveryOptions, loggerFactory);
            telemetry.Own(AutoRecoveryMetrics.Observe(() => recovery.UnderReplicated));
        }

        return new BookieHost(app, store, zookeeper, registration, telemetry, peers, recovery, bookieId);
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_recovery is not null)
        {
            await _recovery.DisposeAsync();
        }

        await _peers.DisposeAsync();
        await _registration.DisposeAsync();
        await RoleServer.StopAsync(_app);
        _telemetry.Dispose();
        await _store.DisposeAsync();
        await _zookeeper.DisposeAsync();
    }
}
