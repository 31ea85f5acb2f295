using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>
/// The durability proof: a real `streams standalone` is killed with SIGKILL while writers are mid-stream; after a
/// restart on the same data directory every acknowledged event is there, per-key order holds, nothing is duplicated,
/// and nothing that was never written appears.
/// </summary>
public sealed class DurabilityTests
{
    [Fact]
    public async Task Every_acknowledged_event_survives_SIGKILL_in_per_key_order()
    {
        using var dir = new TempDirectory("durability");
        var server = await StreamsProcess.StartStandaloneAsync(dir.Path);
        try
        {
            AckedLoad load;
            await using (var client = ProcessTestClients.Create(server.ControllerUri))
            {
                await using var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "durable", 4);

                // Kill once a good amount is acknowledged and writes are still flowing.
                load = AckedLoad.Start(writer, maxDuration: TimeSpan.FromSeconds(30));
                await load.WaitForAcknowledgedAsync(20_000, TimeSpan.FromSeconds(20));
                server.Kill();
                await load.StopAsync(TimeSpan.FromSeconds(60));
            }

            Assert.True(load.Acknowledged >= 1_000, $"Only {load.Acknowledged} events were acknowledged before the kill.");
            Assert.True(load.Acknowledged < load.Attempted, "The kill should have caught writes in flight.");

            await server.DisposeAsync();
            server = await StreamsProcess.StartStandaloneAsync(dir.Path); // fresh ports: the data directory is what matters
            await using var reader = ProcessTestClients.Create(server.ControllerUri);
            var read = await AckedLoad.ReadAllAsync(reader, "durable", "events");
            load.Verify(read);
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}, read back {read.Count}");
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Server output:\n" + server.Output, e);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }
}
