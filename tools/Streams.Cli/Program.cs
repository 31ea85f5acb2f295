using System.CommandLine;
using Streams.Cli.Commands;

var root = new RootCommand("Streams: a tiered segment stream store. Run `streams standalone` to start a server.")
{
    StandaloneCommand.Create(),
    RoleCommands.Controller(),
    RoleCommands.SegmentStore(),
    RoleCommands.Bookie(),
    DevClusterCommand.Create(),
    AdminCommands.Scope(),
    AdminCommands.Stream(),
    WriteCommand.Create(),
    ReadCommand.Create(),
    ExportCommand.Create(),
    ReaderGroupCommands.Create(),
    TransactionCommands.Create(),
    BenchCommand.Create(),
};
root.Options.Add(CliSupport.Controller);
root.Options.Add(CliSupport.Transport);

// Ctrl-C and SIGTERM cancel the command's token; servers then shut down cleanly (a dev cluster stops its children),
// each step bounded by its own timeout. Only if all that hangs is the process ended.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(60) });
