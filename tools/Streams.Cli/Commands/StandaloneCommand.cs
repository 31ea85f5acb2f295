using System.CommandLine;
using Streams.Hosting;

namespace Streams.Cli.Commands;

/// <summary><c>streams standalone</c>: every role in one durable process.</summary>
internal static class StandaloneCommand
{
    /// <summary>--tier2, shared by standalone and segmentstore.</summary>
    public static Option<string?> Tier2Option(string defaultText) => new("--tier2")
    {
        Description = $"Tier 2 storage: file://PATH, or s3://BUCKET/PREFIX?endpoint=http://HOST:PORT (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or none ({defaultText}).",
    };

    public static Command Create()
    {
        var flags = new ServerFlags(grpcPort: 9090, dataPort: 9091, metricsPort: 9092)
            .Map(new Option<string?>("--data-dir") { Description = "Data directory (default ./streams-data)." }, "DataDirectory")
            .Map(new Option<int?>("--containers") { Description = "Segment containers (default 4; fixed once data exists)." }, "SegmentStore:ContainerCount")
            .Map(new Option<int?>("--cache-mb") { Description = "Read cache size in MiB (default 256)." }, "SegmentStore:CacheSize", format: ServerFlags.MiB)
            .Map(Tier2Option("default: file://DATA-DIR/tier2"), "SegmentStore:Tier2");
        var command = new Command("standalone", "Run the controller, a segment store and a bookie in one process, durable on local disk.");
        flags.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliSupport.RunAsync(parse, async () =>
        {
            var configuration = ServerConfiguration.Build(parse.GetValue(flags.Config), flags.Values(parse), flags.Defaults);
            using var loggerFactory = ServerLogging.Create(configuration, parse.GetValue(flags.LogLevel));
            await using var server = await StandaloneHost.StartAsync(configuration, loggerFactory, cancellationToken);
            var s = server.Settings;
            Console.WriteLine($"Streams standalone is ready: controller {s.GrpcUri}, data {s.Advertised}:{s.DataPort}, metrics http://{s.Advertised}:{s.MetricsPort}/metrics, data in {server.DataDirectory}");
            await server.WaitForShutdownAsync(cancellationToken);
            return 0;
        }));
        return command;
    }
}
