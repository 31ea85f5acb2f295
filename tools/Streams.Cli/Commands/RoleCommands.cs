using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Streams.Hosting;

namespace Streams.Cli.Commands;

/// <summary><c>streams bookie</c>, <c>streams segmentstore</c>, <c>streams controller</c>: the cluster roles, one per process.</summary>
internal static class RoleCommands
{
    public static Command Bookie()
    {
        var flags = new ServerFlags(grpcPort: 3182, dataPort: 3181, metricsPort: 3183)
            .Map(ZooKeeperOption(), "ZooKeeper:Connect")
            .Map(SessionTimeoutOption(), "ZooKeeper:SessionTimeout", format: ServerFlags.Milliseconds)
            .Map(new Option<string?>("--data-dir") { Description = "Journal directory (default ./streams-data/bookie)." }, "Bookie:DataDirectory");
        return Role("bookie", "Run a bookie: a storage node of the replicated log (Tier 1).", flags, async (configuration, loggers, ct) =>
        {
            await using var host = await BookieHost.StartAsync(configuration, loggers, ct);
            Console.WriteLine($"Bookie {host.BookieId} is ready.");
            await host.WaitForShutdownAsync(ct);
        });
    }

    public static Command SegmentStore()
    {
        var flags = new ServerFlags(grpcPort: 9100, dataPort: 9101, metricsPort: 9102)
            .Map(ZooKeeperOption(), "ZooKeeper:Connect")
            .Map(SessionTimeoutOption(), "ZooKeeper:SessionTimeout", format: ServerFlags.Milliseconds)
            .Map(new Option<int?>("--cache-mb") { Description = "Read cache size in MiB (default 256)." }, "SegmentStore:CacheSize", format: ServerFlags.MiB)
            .Map(StandaloneCommand.Tier2Option("default: none; every segment store of a cluster must name the same one"), "SegmentStore:Tier2")
            .Map(new Option<int?>("--ensemble") { Description = "Bookies each ledger is striped over, E (default 3)." }, "Ledger:EnsembleSize")
            .Map(new Option<int?>("--write-quorum") { Description = "Copies of each entry, Qw (default 3)." }, "Ledger:WriteQuorum")
            .Map(new Option<int?>("--ack-quorum") { Description = "Durable copies before an ack, Qa (default 2)." }, "Ledger:AckQuorum");
        return Role("segmentstore", "Run a segment store: serves the containers the controller assigns it.", flags, async (configuration, loggers, ct) =>
        {
            await using var host = await SegmentStoreHost.StartAsync(configuration, loggers, ct);
            Console.WriteLine($"Segment store {host.StoreId} is ready.");
            await host.WaitForShutdownAsync(ct);
        });
    }

    public static Command Controller()
    {
        var flags = new ServerFlags(grpcPort: 9090, dataPort: null, metricsPort: 9092)
            .Map(ZooKeeperOption(), "ZooKeeper:Connect")
            .Map(SessionTimeoutOption(4000), "ZooKeeper:SessionTimeout", format: ServerFlags.Milliseconds)
            .Map(new Option<int?>("--containers") { Description = "Segment containers of the cluster (default 8; fixed once the cluster exists)." }, "Cluster:ContainerCount");
        return Role("controller", "Run a controller: the stream API, container assignment, the KEDA scaler.", flags, async (configuration, loggers, ct) =>
        {
            await using var host = await ControllerHost.StartAsync(configuration, loggers, ct);
            Console.WriteLine($"Controller is ready on {ServerConfiguration.Bind<ServerSettings>(configuration, "Server").GrpcUri}.");
            await host.WaitForShutdownAsync(ct);
        });
    }

    private static Option<string?> ZooKeeperOption() =>
        new("--zookeeper") { Description = "ZooKeeper connection string, host:port[,host:port][/root] (root default /streams)." };

    private static Option<int?> SessionTimeoutOption(int defaultMs = 4000) =>
        new("--session-timeout-ms") { Description = $"ZooKeeper session timeout: how long before a crashed member's work moves (default {defaultMs})." };

    private static Command Role(string name, string description, ServerFlags flags, Func<IConfiguration, ILoggerFactory, CancellationToken, Task> run)
    {
        var command = new Command(name, description);
        flags.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliSupport.RunAsync(parse, async () =>
        {
            var configuration = ServerConfiguration.Build(parse.GetValue(flags.Config), flags.Values(parse), flags.Defaults);
            using var loggers = ServerLogging.Create(configuration, parse.GetValue(flags.LogLevel));
            await run(configuration, loggers, cancellationToken);
            return 0;
        }));
        return command;
    }
}
