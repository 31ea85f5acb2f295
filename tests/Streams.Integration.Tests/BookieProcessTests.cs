using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Contracts.Bookie;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>
/// Real bookie processes under the ledger client: a bookie killed with SIGKILL comes back with every entry it
/// stored, and an entry damaged on its disk is refused with a checksum error, never served, while the ledger
/// still reads it from the other copies.
/// </summary>
public sealed class BookieProcessTests
{
    private const int Entries = 200;
    private const int Damaged = 123;

    [Fact]
    public async Task A_bookie_restarted_after_SIGKILL_serves_its_entries_and_refuses_a_corrupted_one()
    {
        await using var cluster = await ClusterProcesses.StartAsync(bookies: 3, stores: 0, quorums: (3, 3, 2));
        try
        {
            await using var zookeeper = await ZooKeeperMetadataStore.ConnectAsync(
                cluster.ZooKeeper.ConnectionString, "/streams", TimeSpan.FromSeconds(10), NullLogger.Instance, TestContext.Current.CancellationToken);
            await using var bookies = new BookieDirectory(zookeeper, TimeSpan.FromSeconds(5));
            var manager = new LedgerManager(zookeeper, bookies, new LedgerOptions { EnsembleSize = 3, WriteQuorum = 3, AckQuorum = 2 }, NullLogger.Instance);

            var writer = await manager.CreateAsync(TestContext.Current.CancellationToken);
            await Task.WhenAll(Enumerable.Range(0, Entries).Select(i => writer.AddAsync(Payload(i))));
            await writer.CloseAsync();
            var (metadata, _) = await manager.ReadMetadataAsync(writer.LedgerId, TestContext.Current.CancellationToken);

            // Bookie 0 has every entry durably (reads are served from what its journal committed); then SIGKILL.
            // The ack quorum is 2 of 3, so bookie 0 may still be committing the tail when the writer closes: wait
            // for it here. After the restart no such wait is allowed: what it served before the kill must be there.
            var victim = $"127.0.0.1:{cluster.Bookies[0].DataPort}";
            Assert.Contains(victim, metadata.Fragments[0].Bookies);
            await AssertServesAllAsync(await bookies.GetAsync(victim, TestContext.Current.CancellationToken), writer.LedgerId, damaged: null, awaitArrival: true);
            cluster.KillBookie(0);
            FlipByteIn(cluster.BookieDirectory(0), Encoding.UTF8.GetBytes(Marker(Damaged)));

            await cluster.RestartBookieAsync(0);
            await AssertServesAllAsync(await bookies.GetAsync(victim, TestContext.Current.CancellationToken), writer.LedgerId, damaged: Damaged, awaitArrival: false);

            // The ledger as a whole still has the entry: its reader skips the damaged copy.
            using var entry = await manager.ReadAsync(metadata, writer.LedgerId, Damaged, TestContext.Current.CancellationToken);
            Assert.Equal(Payload(Damaged), entry.Data.Payload.ToArray());

            var metrics = await PrometheusText.ScrapeAsync(cluster.Bookies[0].MetricsPort, TestContext.Current.CancellationToken);
            Assert.InRange(PrometheusText.Value(metrics, "streams_bookie_corrupt_entries_total") ?? 0, 1, 2);
            Assert.Equal(Entries - 1, PrometheusText.Value(metrics, "streams_bookie_read_entries_total"));
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Cluster output:\n" + cluster.Output(), e);
        }
    }

    private static async Task AssertServesAllAsync(IBookieClient bookie, long ledger, int? damaged, bool awaitArrival)
    {
        // Right after a restart the client may still hold the dead connection: retry unavailability briefly.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        for (var i = 0; i < Entries; i++)
        {
            BookieEntry read;
            try
            {
                read = await bookie.ReadAsync(ledger, i);
            }
            catch (BookieUnavailableException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
                i--;
                continue;
            }

            using (read)
            {
                if (awaitArrival && read.Status is BookieStatus.NoSuchLedger or BookieStatus.NoSuchEntry && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                    i--;
                    continue;
                }

                if (i == damaged)
                {
                    Assert.Equal(BookieStatus.Corrupt, read.Status);
                    Assert.True(read.Payload.IsEmpty, "A corrupt entry's bytes were served.");
                }
                else
                {
                    Assert.Equal(BookieStatus.Ok, read.Status);
                    Assert.Equal(Payload(i), read.Payload.ToArray());
                }
            }
        }
    }

    private static string Marker(int i) => $"entry-{i:D5}-marker-";

    private static byte[] Payload(int i) => Encoding.UTF8.GetBytes(Marker(i) + new string((char)('a' + (i % 26)), 200));

    private static void FlipByteIn(string directory, byte[] needle)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "journal.*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            var at = bytes.AsSpan().IndexOf(needle);
            if (at >= 0)
            {
                bytes[at + needle.Length + 5] ^= 0xFF;
                File.WriteAllBytes(file, bytes);
                return;
            }
        }

        throw new InvalidOperationException($"{Encoding.UTF8.GetString(needle)} was not found in any journal file under {directory}.");
    }
}
