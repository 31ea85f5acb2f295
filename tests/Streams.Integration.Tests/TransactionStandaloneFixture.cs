using Streams.Client;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// One real `streams standalone` process for the transaction tests, with a Tier 2 directory the tests look into and
/// settings that make the interesting moments come within a test's time: the lease sweep runs every 250 ms, and data
/// moves to Tier 2 half a second after it is written.
/// </summary>
public sealed class TransactionStandaloneFixture : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("transactions-standalone");

    public StreamsProcess Server { get; private set; } = null!;

    /// <summary>The directory the process uses as Tier 2 (file://).</summary>
    public string Tier2Directory => _dir.Sub("tier2");

    public async ValueTask InitializeAsync() => Server = await StreamsProcess.StartOnFreePortsAsync(
        ["standalone", "--data-dir", _dir.Sub("data"), "--tier2", "file://" + Tier2Directory],
        new Dictionary<string, string>
        {
            ["STREAMS__Transactions__SweepInterval"] = "00:00:00.250",
            ["STREAMS__SegmentStore__Tier2FlushAge"] = "00:00:00.500",
        });

    public StreamsClient CreateClient() => ProcessTestClients.Create(Server.ControllerUri);

    public Task<CliResult> RunCliAsync(string? stdin, params string[] args) =>
        StreamsProcess.RunAsync([.. args, "--controller", Server.ControllerUri], stdin);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
