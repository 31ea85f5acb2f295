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
using Streams.Ledger.Bookies;

namespace Streams.Hosting;

/// <summary>
/// <c>streams bookie</c>: a storage node. Its journal lives in the data directory; it serves the raw carrier (for
/// ledger clients) and gRPC, and registers at /bookies/available/{host:data-port} while it runs.
/// </summary>
public sealed class BookieHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly BookieStore _store;
    private readonly ZooKeeperMetadataStore _zookeeper;
    private readonly EphemeralRegistration _registration;
    private readonly RoleTelemetry _telemetry;

    private BookieHost(WebApplication app, BookieStore store, ZooKeeperMetadataStore zookeeper, EphemeralRegistration registration, RoleTelemetry telemetry, string bookieId)
    {
        (_app, _store, _zookeeper, _registration, _telemetry, BookieId) = (app, store, zookeeper, registration, telemetry, bookieId);
    }

    public string BookieId { get; }

    public static async Task<BookieHost> StartAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var settings = ServerConfiguration.Bind<ServerSettings>(configuration, "Server");
        settings.Validate();
        var options = ServerConfiguration.Bind<BookieOptions>(configuration, "Bookie");
        options.Validate();
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
        return new BookieHost(app, store, zookeeper, registration, telemetry, bookieId);
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _registration.DisposeAsync();
        await RoleServer.StopAsync(_app);
        _telemetry.Dispose();
        await _store.DisposeAsync();
        await _zookeeper.DisposeAsync();
    }
}
