using System.CommandLine;
using Streams.Hosting;

namespace Streams.Cli.Commands;

/// <summary>
/// <c>streams dev-cluster</c>: a whole cluster on this machine, each role its own process — ZooKeeper, bookies, a
/// controller on the standalone's address (so other commands need no flags) and segment stores. It stays in the
/// foreground and stops everything on Ctrl-C or SIGTERM.
/// </summary>
internal static class DevClusterCommand
{
    public static Command Create()
    {
        var bookies = new Option<int>("--bookies") { Description = "Bookies to run.", DefaultValueFactory = _ => 3 };
        var stores = new Option<int>("--segmentstores") { Description = "Segment stores to run.", DefaultValueFactory = _ => 1 };
        var dataDir = new Option<string>("--data-dir") { Description = "Where ZooKeeper and the bookies keep data.", DefaultValueFactory = _ => "./streams-dev" };
        var port = new Option<int>("--port") { Description = "The controller's gRPC port.", DefaultValueFactory = _ => 9090 };
        var metricsPort = new Option<int>("--metrics-port") { Description = "The controller's metrics port.", DefaultValueFactory = _ => 9092 };
        var containers = new Option<int>("--containers") { Description = "Segment containers.", DefaultValueFactory = _ => 4 };
        var ensemble = new Option<int?>("--ensemble") { Description = "E of the ledgers (default: min(3, bookies))." };
        var writeQuorum = new Option<int?>("--write-quorum") { Description = "Qw (default: E)." };
        var ackQuorum = new Option<int?>("--ack-quorum") { Description = "Qa (default: Qw - 1, at least 1)." };
        var sessionTimeout = new Option<int>("--session-timeout-ms") { Description = "ZooKeeper session timeout of the members.", DefaultValueFactory = _ => 4000 };
        var tier2 = StandaloneCommand.Tier2Option("default: file://DATA-DIR/tier2, shared by the segment stores");
        var command = new Command("dev-cluster", "Run ZooKeeper, bookies, a controller and segment stores as separate local processes; Ctrl-C stops them all.")
        {
            bookies, stores, dataDir, port, metricsPort, containers, ensemble, writeQuorum, ackQuorum, sessionTimeout, tier2,
        };
        command.SetAction((parse, cancellationToken) => CliSupport.RunAsync(parse, async () =>
        {
            var bookieCount = parse.GetValue(bookies);
            var e = parse.GetValue(ensemble) ?? Math.Min(3, bookieCount);
            var qw = parse.GetValue(writeQuorum) ?? e;
            var qa = parse.GetValue(ackQuorum) ?? Math.Max(1, qw - 1);
            if (bookieCount < 1 || parse.GetValue(stores) < 1 || e > bookieCount || qw > e || qa > qw || qa < 1)
            {
                throw new CliException($"Need at least one bookie and one segment store, and {bookieCount} bookies >= E ({e}) >= Qw ({qw}) >= Qa ({qa}) >= 1.");
            }

            await using var cluster = new DevCluster(Path.GetFullPath(parse.GetValue(dataDir)!), parse.GetValue(sessionTimeout));
            await cluster.StartAsync(bookieCount, parse.GetValue(stores), parse.GetValue(port), parse.GetValue(metricsPort), parse.GetValue(containers), (e, qw, qa), parse.GetValue(tier2), cancellationToken);
            Console.WriteLine($"Streams dev cluster is ready: controller http://127.0.0.1:{parse.GetValue(port)}, ZooKeeper {cluster.ZooKeeper}, " +
                $"{bookieCount} bookies (E={e}, Qw={qw}, Qa={qa}), {parse.GetValue(stores)} segment store(s). Ctrl-C stops everything.");
            await cluster.WaitAsync(cancellationToken);
            return 0;
        }));
        return command;
    }
}
