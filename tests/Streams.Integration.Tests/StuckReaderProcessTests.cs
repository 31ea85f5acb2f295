using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A real standalone process against clients that send reads and never take the answers: its memory stays within its
/// read cache plus the stuck connections' reply budgets (and the runtime's own), while another client works at full
/// speed. Without the budget, each stuck connection pins every cached frame it was answered from, evicted or not.
/// </summary>
public sealed class StuckReaderProcessTests
{
    private const int StuckReaders = 4;
    private const long Budget = 4L << 20;
    private const long Cache = 32L << 20;
    private const int EventSize = 16 * 1024;
    private const int Events = 3072; // 48 MiB, more than the cache

    /// <summary>What the process may grow by besides cache and budgets: GC heap slack, pools, the other client's traffic.</summary>
    private const long RuntimeSlack = 96L << 20;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Stuck_raw_readers_keep_the_server_within_cache_plus_budgets_while_another_client_works()
    {
        using var dir = new TempDirectory("stuck-readers");
        await using var server = await StreamsProcess.StartOnFreePortsAsync(
            ["standalone", "--data-dir", dir.Path],
            new Dictionary<string, string>
            {
                ["STREAMS__SegmentStore__CacheSize"] = $"{Cache}B",
                ["STREAMS__SegmentStore__ReplyBudgetPerConnection"] = $"{Budget}B",
            });
        await using var client = ProcessTestClients.Create(server.ControllerUri);
        await client.Streams.CreateScopeAsync("rss", Token);
        var payload = new byte[EventSize];
        // One stream per stuck reader, each larger than the cache: together they ask for far more than it holds.
        await Task.WhenAll(Enumerable.Range(0, StuckReaders).Select(async r =>
        {
            await client.Streams.CreateStreamAsync("rss", $"stuck{r}", StreamConfig.Fixed(1), Token);
            await using var writer = await client.CreateWriterAsync("rss", $"stuck{r}", Serializers.Bytes, cancellationToken: Token);
            await Task.WhenAll(Enumerable.Range(0, Events).Select(_ => writer.WriteEventAsync(payload, Token)));
        }));

        // The cache is full of the stream's tail now: that is the baseline the stuck readers may add their budgets to.
        var baseline = Rss(server.Pid);
        var segmentLength = (long)Events * EventFraming.FrameSize(EventSize);
        var stuck = new List<RawProtocolClient>();
        try
        {
            for (var r = 0; r < StuckReaders; r++)
            {
                stuck.Add(await StuckReaderAsync(server.DataPort, segmentLength, r));
            }

            long peak = baseline;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, Rss(server.Pid));
                    await Task.Delay(100, CancellationToken.None);
                }
            }, CancellationToken.None);

            // Another client reads the whole stream (through cache misses that evict frames) and writes more, twice.
            var clock = Stopwatch.StartNew();
            for (var round = 0; round < 2; round++)
            {
                long read = 0;
                await foreach (var e in client.CreateReader("rss", "stuck0", Serializers.Bytes).ReadAllAsync(Token))
                {
                    read += e.Value.Length;
                }

                Assert.True(read >= (long)Events * EventSize, $"Read {read} bytes.");
                await using var writer = await client.CreateWriterAsync("rss", "stuck0", Serializers.Bytes, cancellationToken: Token);
                await Task.WhenAll(Enumerable.Range(0, 256).Select(_ => writer.WriteEventAsync(payload, Token)));
            }

            var elapsed = clock.Elapsed;
            await Task.Delay(500, Token);
            await sampling.CancelAsync();
            await sampler;

            var allowed = baseline + (StuckReaders * Budget) + RuntimeSlack;
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"RSS baseline {baseline >> 20} MiB, peak {peak >> 20} MiB, allowed {allowed >> 20} MiB " +
                $"(cache {Cache >> 20} MiB, {StuckReaders} stuck × {Budget >> 20} MiB); the other client took {elapsed.TotalSeconds:F1} s");
            Assert.False(server.HasExited, server.Output);
            Assert.True(elapsed < TimeSpan.FromSeconds(30), $"The other client took {elapsed} beside the stuck readers.");
            Assert.True(peak <= allowed, $"RSS peaked at {peak >> 20} MiB (baseline {baseline >> 20} MiB); allowed {allowed >> 20} MiB.");
        }
        finally
        {
            stuck.ForEach(s => s.Dispose());
        }
    }

    /// <summary>Connects with a tiny receive buffer, asks for 64 MiB in 1 MiB reads spread over its stream's segment, and never reads.</summary>
    private static async Task<RawProtocolClient> StuckReaderAsync(int port, long segmentLength, int index)
    {
        var reader = await RawProtocolClient.ConnectAsync(port, receiveBufferSize: 4096, Token);
        await reader.SendHelloAsync($"stuck-{index}", Token);
        var step = segmentLength / 64;
        for (var i = 0; i < 64; i++)
        {
            await reader.SendAsync(new DataRequest
            {
                Read = new ReadSegmentRequest { RequestId = i + 1, Segment = $"rss/stuck{index}/0.#epoch.0", Offset = i * step, MaxBytes = 1 << 20 },
            }, Token);
        }

        return reader;
    }

    /// <summary>The resident set of a process, from /proc (Linux).</summary>
    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"No VmRSS for process {pid}.");
    }
}
