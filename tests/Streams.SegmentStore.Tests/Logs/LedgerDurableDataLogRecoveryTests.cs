using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Coordination.Metadata;
using Streams.Hosting;
using Streams.Ledger;
using Streams.Ledger.Bookies;
using Streams.SegmentStore.Logs;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Logs;

/// <summary>
/// Recovery of a log on real bookies over TCP (three bookie servers in this process, E3/Qw3/Qa2, ZooKeeper for
/// metadata), read one entry at a time and with the default read-ahead; the frames/s of both are printed.
/// STREAMS_RECOVERY_FRAMES sets the log's length (default 3,000; the figures in the report use 33,000).
/// </summary>
public sealed class LedgerDurableDataLogRecoveryTests : IAsyncLifetime
{
    private const int RecordSize = 1024;

    private readonly TempDirectory _dir = new("log-recovery");
    private readonly List<BookieHost> _bookies = [];
    private ZooKeeperServer _zooKeeper = null!;
    private ZooKeeperMetadataStore _store = null!;
    private BookieDirectory _directory = null!;

    public async ValueTask InitializeAsync()
    {
        _zooKeeper = await ZooKeeperServer.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            _bookies.Add(await StartBookieAsync(i));
        }

        _store = await ZooKeeperMetadataStore.ConnectAsync(_zooKeeper.ConnectionString, "/streams", TimeSpan.FromSeconds(10), NullLogger.Instance);
        _directory = new BookieDirectory(_store, TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        await _directory.DisposeAsync();
        await _store.DisposeAsync();
        foreach (var bookie in _bookies)
        {
            await bookie.DisposeAsync();
        }

        await _zooKeeper.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Recovery_reads_ahead_over_the_network_and_keeps_every_record_in_order()
    {
        var frames = int.TryParse(Environment.GetEnvironmentVariable("STREAMS_RECOVERY_FRAMES"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 3_000;
        // Deadlines far above any add or read here: the test measures replay, and a loaded machine must not turn its
        // first, slow adds (connections, JIT) into failed bookies.
        var ledgers = new LedgerManager(_store, _directory, new LedgerOptions { EnsembleSize = 3, WriteQuorum = 3, AckQuorum = 2, AddTimeout = TimeSpan.FromSeconds(30), ReadTimeout = TimeSpan.FromSeconds(30) }, NullLogger.Instance);
        var writer = new LedgerDurableDataLog(0, ledgers, 16L << 20, 1, NullLogger.Instance);
        await writer.OpenAsync();
        var writing = Stopwatch.GetTimestamp();
        var window = new List<Task<LogAddress>>();
        for (var i = 0; i < frames; i++)
        {
            window.Add(writer.AppendAsync(Record(i)).AsTask());
            if (window.Count == 256)
            {
                await Task.WhenAll(window);
                window.Clear();
            }
        }

        await Task.WhenAll(window);
        var results = new List<string> { FormattableString.Invariant($"written              {frames} frames in {Stopwatch.GetElapsedTime(writing).TotalSeconds,6:F2} s") };

        // Each pass is a new owner (it fences and recovers the previous one's ledger), then replays everything. The
        // first pass warms up (JIT, connections) and is not reported; then the two alternate.
        var passes = new[] { ("warm-up", 16L << 20), ("one read at a time", 1L), ("read-ahead 16MiB", 16L << 20), ("one read at a time", 1L), ("read-ahead 16MiB", 16L << 20) };
        foreach (var (name, readAhead) in passes)
        {
            var owner = new LedgerDurableDataLog(0, ledgers, 16L << 20, readAhead, NullLogger.Instance);
            await owner.OpenAsync();
            var started = Stopwatch.GetTimestamp();
            var count = 0;
            await foreach (var record in owner.ReadAllAsync())
            {
                using (record)
                {
                    Assert.Equal(count, BitConverter.ToInt32(record.Memory.Span));
                    count++;
                }
            }

            var elapsed = Stopwatch.GetElapsedTime(started);
            Assert.Equal(frames, count);
            Assert.True(elapsed < TimeSpan.FromMinutes(2), $"Replaying {frames} frames took {elapsed}.");
            if (name != "warm-up")
            {
                results.Add(FormattableString.Invariant($"{name,-20} {frames} frames in {elapsed.TotalSeconds,6:F2} s: {frames / elapsed.TotalSeconds,8:F0} frames/s"));
            }
        }

        foreach (var line in results)
        {
            TestContext.Current.TestOutputHelper?.WriteLine(line);
        }
    }

    private static byte[] Record(int i)
    {
        var record = new byte[RecordSize];
        BitConverter.TryWriteBytes(record, i);
        return record;
    }

    private async Task<BookieHost> StartBookieAsync(int index)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Server:Host"] = "127.0.0.1",
            ["Server:GrpcPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["Server:DataPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["Server:MetricsPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["Bookie:DataDirectory"] = _dir.Sub("bookie-" + index),
            ["Bookie:JournalSegmentSize"] = "16MiB",
            ["ZooKeeper:Connect"] = _zooKeeper.ConnectionString,
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return await BookieHost.StartAsync(configuration, NullLoggerFactory.Instance, CancellationToken.None);
    }
}
