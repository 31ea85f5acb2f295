using System.Globalization;
using System.Text;
using Streams.Client.Serialization;
using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>
/// Tier 2 proofs on the real `streams standalone` process: many times more data than the read cache and the Tier 1
/// budget goes through, the process is killed and restarted, and everything reads back byte for byte in per-key
/// order, with Tier 2 a directory and with Tier 2 a real S3-protocol server (s3rver). The bookie's journal stays
/// bounded meanwhile (measured on disk). Also: s3rver stopped during a write load and started again.
/// </summary>
public sealed class Tier2ProofTests
{
    private const int Keys = 8;
    private const int EventSize = 4096;
    private const int EventsPerKey = 4096; // 8 × 4096 × 4 KiB = 128 MiB
    private const int Containers = 2;
    private const int BudgetMb = 4;

    /// <summary>Small flushes, checkpoints, ledgers and journal files, so a test-sized load exercises truncation many times.</summary>
    private static Dictionary<string, string> Settings(IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>
        {
            ["STREAMS__SEGMENTSTORE__CACHESIZE"] = "16MiB",
            ["STREAMS__SEGMENTSTORE__TIER2CACHESIZE"] = "8MiB",
            ["STREAMS__SEGMENTSTORE__TIER2FLUSHSIZE"] = "256KiB",
            ["STREAMS__SEGMENTSTORE__TIER2MAXCHUNKSIZE"] = "1MiB",
            ["STREAMS__SEGMENTSTORE__TIER2FLUSHAGE"] = "00:00:01",
            ["STREAMS__SEGMENTSTORE__TIER1BUDGET"] = BudgetMb.ToString(CultureInfo.InvariantCulture) + "MiB",
            ["STREAMS__SEGMENTSTORE__CHECKPOINTEVERY"] = "512KiB",
            ["STREAMS__SEGMENTSTORE__LEDGERROLLOVERSIZE"] = "1MiB",
            ["STREAMS__BOOKIE__JOURNALSEGMENTSIZE"] = "4194304",
            ["STREAMS__BOOKIE__MAXENTRYSIZE"] = "3145728",
            ["STREAMS__BOOKIE__GCINTERVAL"] = "00:00:00.200",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        return settings;
    }

    private static Task<StreamsProcess> StartAsync(string dataDirectory, string tier2, IReadOnlyDictionary<string, string>? environment) =>
        StreamsProcess.StartOnFreePortsAsync(
            ["standalone", "--data-dir", dataDirectory, "--containers", Containers.ToString(CultureInfo.InvariantCulture), "--tier2", tier2], Settings(environment));

    /// <summary>The event a key writes at a sequence number: a header, then filler that differs by key and position.</summary>
    private static string Payload(int key, int seq)
    {
        var text = new StringBuilder(EventSize);
        text.Append(CultureInfo.InvariantCulture, $"{key}:{seq}:");
        var fill = (uint)((key * 7919) + (seq * 104_729));
        while (text.Length < EventSize)
        {
            fill = (fill * 1_103_515_245) + 12_345;
            text.Append((char)('a' + ((fill >> 16) % 26)));
        }

        return text.ToString();
    }

    private static long JournalBytesOnDisk(string dataDirectory) => DirectorySize.Of(Path.Combine(dataDirectory, "bookie"));

    /// <summary>
    /// Polls the server's <c>tier2_unflushed_bytes</c> gauge until it reads 0 (or the time is up) and returns the last
    /// reading.
    /// </summary>
    private static async Task<long> WaitUntilFlushedAsync(StreamsProcess server, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var metrics = await PrometheusText.ScrapeAsync(server.MetricsPort, TestContext.Current.CancellationToken);
            var unflushed = (long)(PrometheusText.Value(metrics, "streams_segmentstore_tier2_unflushed_bytes")
                ?? throw new InvalidOperationException("/metrics has no streams_segmentstore_tier2_unflushed_bytes:\n" + metrics));
            if (unflushed == 0 || DateTime.UtcNow > deadline)
            {
                return unflushed;
            }

            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public Task Far_more_than_cache_and_budget_survives_a_restart_with_a_filesystem_tier2()
    {
        var dir = new TempDirectory("tier2-proof-fs");
        return ProveAsync(dir, "file://" + dir.Sub("tier2"), null);
    }

    [Fact]
    public async Task Far_more_than_cache_and_budget_survives_a_restart_with_s3_as_tier2()
    {
        await using var s3 = await S3Server.StartAsync();
        await ProveAsync(new TempDirectory("tier2-proof-s3"), s3.Tier2Uri("proof"), S3Server.Environment);
    }

    private static async Task ProveAsync(TempDirectory dir, string tier2, IReadOnlyDictionary<string, string>? environment)
    {
        using var cleanup = dir;
        var dataDirectory = dir.Sub("data");
        var server = await StartAsync(dataDirectory, tier2, environment);
        try
        {
            long maxJournal = 0;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    maxJournal = Math.Max(maxJournal, JournalBytesOnDisk(dataDirectory));
                    await Task.Delay(100, CancellationToken.None);
                }
            });

            await using (var client = ProcessTestClients.Create(server.ControllerUri))
            {
                await using var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "proof", 4);
                var pending = new List<Task>(1024);
                for (var seq = 0; seq < EventsPerKey; seq++)
                {
                    for (var key = 0; key < Keys; key++)
                    {
                        pending.Add(writer.WriteEventAsync("key-" + key.ToString(CultureInfo.InvariantCulture), Payload(key, seq)));
                    }

                    if (pending.Count >= 1024)
                    {
                        await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(120));
                        pending.Clear();
                    }
                }

                await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(120));
            }

            // Everything acknowledged reaches Tier 2 by age (1 s here) however busy the machine; a GC round or more follows.
            var unflushed = await WaitUntilFlushedAsync(server, TimeSpan.FromSeconds(60));
            Assert.True(unflushed == 0, $"{unflushed} acknowledged bytes were still not in Tier 2 after 60 s.");
            await Task.Delay(1000);
            await sampling.CancelAsync();
            await sampler;
            var written = (long)Keys * EventsPerKey * EventSize;
            var tier2Files = tier2.StartsWith("file://", StringComparison.Ordinal)
                ? DirectorySize.Of(new Uri(tier2).LocalPath)
                : -1;
            TestContext.Current.TestOutputHelper?.WriteLine($"wrote {written >> 20} MiB; journal at most {maxJournal >> 20} MiB on disk; Tier 2 files {tier2Files >> 20} MiB");

            // The journal holds what is not in Tier 2 yet (at most the budget per container), flushed data until the
            // next checkpoint and ledger rollover, and what arrives between garbage collections: far below what went in.
            Assert.True(maxJournal <= 48L << 20, $"The bookie journal reached {maxJournal >> 20} MiB while {written >> 20} MiB were written.");
            if (tier2Files >= 0)
            {
                Assert.True(tier2Files >= written, $"Tier 2 holds {tier2Files} bytes of the {written} written.");
            }

            server.Kill();
            await server.DisposeAsync();
            server = await StartAsync(dataDirectory, tier2, environment); // fresh ports: nothing depends on the old ones

            await using var reader = ProcessTestClients.Create(server.ControllerUri);
            var next = new int[Keys];
            var count = 0;
            await foreach (var e in reader.CreateReader("proof", "events", Serializers.Utf8).ReadAllAsync())
            {
                var key = int.Parse(e.RoutingKey!.AsSpan(4), CultureInfo.InvariantCulture);
                var expected = Payload(key, next[key]);
                Assert.True(expected == e.Value, $"Event {next[key]} of key {key} differs from what was written (at {e.Position.Segment}@{e.Position.Offset}).");
                next[key]++;
                count++;
            }

            Assert.Equal(Keys * EventsPerKey, count);
            Assert.All(next, n => Assert.Equal(EventsPerKey, n));
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

    [Fact]
    public async Task Writes_wait_while_s3_is_down_and_nothing_acknowledged_is_lost()
    {
        await using var s3 = await S3Server.StartAsync();
        using var dir = new TempDirectory("tier2-outage");
        await using var server = await StartAsync(dir.Sub("data"), s3.Tier2Uri("outage"), S3Server.Environment);
        try
        {
            await using var client = ProcessTestClients.ForFaults(server.ControllerUri);
            await using var writer = await ProcessTestClients.CreateStreamAndWriterAsync(client, "outage", 4);
            var load = AckedLoad.Start(writer, maxDuration: TimeSpan.FromSeconds(90), padding: 1024);
            Assert.True(await load.WaitForAcknowledgedAsync(2_000, TimeSpan.FromSeconds(30)), $"The load did not start: {load}");

            await s3.StopAsync();
            // Ingest continues into Tier 1 until the budget is full, then acknowledgements stop (no errors).
            var stalled = await WaitForStallAsync(load, TimeSpan.FromSeconds(40));
            Assert.True(stalled, $"Writes never waited for Tier 2: {load}");
            var acknowledgedWhileDown = load.Acknowledged;
            Assert.True(load.Failed == 0, $"Writes failed: {load}");

            // Held down for longer than the client's keep-alive timeout: a store applying back-pressure is alive, and
            // its writers wait rather than give up.
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.True(load.Failed == 0, $"Writes failed while Tier 2 was down: {load}");

            await s3.RestartAsync();
            Assert.True(await load.WaitForAcknowledgedAsync(acknowledgedWhileDown + 2_000, TimeSpan.FromSeconds(40)), $"Writes did not resume after Tier 2 came back: {load}");
            await load.StopAsync(TimeSpan.FromSeconds(60));
            Assert.True(load.Failed == 0, $"Writes failed: {load}");

            load.Verify(await AckedLoad.ReadAllAsync(client, "outage", "events"));
            TestContext.Current.TestOutputHelper?.WriteLine($"{load}; {acknowledgedWhileDown} acknowledged when writes stalled");
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Server output:\n" + server.Output, e);
        }
    }

    /// <summary>True once no write was acknowledged for two seconds.</summary>
    private static async Task<bool> WaitForStallAsync(AckedLoad load, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = load.Acknowledged;
        var since = DateTime.UtcNow;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            var now = load.Acknowledged;
            if (now != last)
            {
                (last, since) = (now, DateTime.UtcNow);
            }
            else if (DateTime.UtcNow - since >= TimeSpan.FromSeconds(2))
            {
                return true;
            }
        }

        return false;
    }
}
