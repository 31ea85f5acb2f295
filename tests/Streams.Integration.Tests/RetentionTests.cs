using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;
using Xunit.Sdk;

namespace Streams.Integration.Tests;

/// <summary>Truncation at stream cuts and retention policies on the real `streams standalone`, with a filesystem Tier 2.</summary>
public sealed class RetentionTests
{
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["STREAMS__SEGMENTSTORE__TIER2FLUSHSIZE"] = "64KiB",
        ["STREAMS__SEGMENTSTORE__TIER2MAXCHUNKSIZE"] = "1MiB",
        ["STREAMS__SEGMENTSTORE__TIER2FLUSHAGE"] = "00:00:00.200",
        ["STREAMS__SEGMENTSTORE__CHECKPOINTEVERY"] = "256KiB",
        ["STREAMS__CONTROLLER__RETENTIONINTERVAL"] = "00:00:00.300",
    };

    private static long Tier2Bytes(string directory) => DirectorySize.Of(directory);

    /// <summary>Runs a test against a fresh `streams standalone`; a failure that is not an assertion carries the server's output.</summary>
    private static async Task WithStandaloneAsync(string name, Func<TempDirectory, string[]> args, Func<TempDirectory, StreamsProcess, Task> test)
    {
        using var dir = new TempDirectory(name);
        await using var server = await StreamsProcess.StartOnFreePortsAsync(["standalone", "--data-dir", dir.Sub("data"), .. args(dir)], Settings);
        try
        {
            await test(dir, server);
        }
        catch (Exception e) when (e is not XunitException)
        {
            throw new InvalidOperationException("Server output:\n" + server.Output, e);
        }
    }

    private static async Task WriteAsync(EventStreamWriter<string> writer, int from, int count)
    {
        var pending = new List<Task>();
        for (var i = from; i < from + count; i++)
        {
            pending.Add(writer.WriteEventAsync("key-" + (i % 4).ToString(CultureInfo.InvariantCulture), i.ToString("D6", CultureInfo.InvariantCulture) + new string('r', 1000)));
        }

        await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(60));
    }

    private static async Task<List<int>> ReadNumbersAsync(StreamsClient client, string scope, string stream)
    {
        var numbers = new List<int>();
        await foreach (var e in client.CreateReader(scope, stream, Serializers.Utf8).ReadAllAsync())
        {
            numbers.Add(int.Parse(e.Value.AsSpan(0, 6), CultureInfo.InvariantCulture));
        }

        return numbers;
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, string what, int seconds = 30) =>
        Waiting.UntilAsync(condition, what, TimeSpan.FromSeconds(seconds), TimeSpan.FromMilliseconds(200));

    [Fact]
    public Task Truncating_at_a_stream_cut_hides_earlier_data_and_deletes_it_from_tier2() =>
        WithStandaloneAsync("truncate", dir => ["--tier2", "file://" + dir.Sub("tier2")], async (dir, server) =>
        {
            var tier2 = dir.Sub("tier2");
            await using var client = StreamsClient.Create(server.ControllerUri);
            await client.Streams.CreateScopeAsync("retention");
            await client.Streams.CreateStreamAsync("retention", "cut", StreamConfig.Fixed(2));
            await using (var writer = await client.CreateWriterAsync("retention", "cut", Serializers.Utf8))
            {
                await WriteAsync(writer, 0, 2000);
                var cut = await client.Streams.GetStreamCutAsync("retention", "cut");
                Assert.Equal(2, cut.Positions.Count);
                Assert.Equal(2000L * 1000, cut.Positions.Values.Sum(), 2000L * 1000 / 10.0);
                await WriteAsync(writer, 2000, 500);
                await WaitUntilAsync(() => Task.FromResult(Tier2Bytes(tier2) >= 2_400_000), "the data is in Tier 2");
                var before = Tier2Bytes(tier2);

                await client.Streams.TruncateStreamAsync(cut);
                await client.Streams.TruncateStreamAsync(cut); // again: a no-op
                Assert.Equal(Enumerable.Range(2000, 500).Order(), (await ReadNumbersAsync(client, "retention", "cut")).Order());
                await WaitUntilAsync(() => Task.FromResult(Tier2Bytes(tier2) < before - 1_500_000), "the truncated chunks are deleted from Tier 2");
            }

            var error = await Assert.ThrowsAnyAsync<Exception>(() => client.Streams.TruncateStreamAsync(new StreamCut("retention", "cut", new Dictionary<long, long> { [99] = 0 })));
            Assert.Contains("not a segment of", error.Message, StringComparison.Ordinal);
        });

    [Fact]
    public Task A_time_retention_policy_drops_data_older_than_the_retention_and_the_cli_truncates_at_the_tail() =>
        WithStandaloneAsync("retention-time", _ => [], async (dir, server) =>
        {
            string[] cli = ["--controller", server.ControllerUri];
            var created = await StreamsProcess.RunAsync(["stream", "create", "timed/events", "--create-scope", "--segments", "2", "--retention-time", "2s", .. cli]);
            Assert.True(created.ExitCode == 0, created.Stderr);
            var described = await StreamsProcess.RunAsync(["stream", "describe", "timed/events", .. cli]);
            Assert.Contains("retain:   2 s", described.Stdout, StringComparison.Ordinal);
            await using var client = StreamsClient.Create(server.ControllerUri);
            await using (var writer = await client.CreateWriterAsync("timed", "events", Serializers.Utf8))
            {
                await WriteAsync(writer, 0, 500);
                await Task.Delay(3000);
                await WriteAsync(writer, 500, 500);
            }

            // Within a few retention rounds the first batch (older than 2 s) goes, the second stays.
            await WaitUntilAsync(async () => (await ReadNumbersAsync(client, "timed", "events")).Min() >= 500, "the old batch is dropped");
            Assert.Equal(Enumerable.Range(500, 500), (await ReadNumbersAsync(client, "timed", "events")).Order());

            var cut = await StreamsProcess.RunAsync(["stream", "cut", "timed/events", .. cli]);
            Assert.True(cut.ExitCode == 0, cut.Stderr);
            Assert.Matches(@"^\d+=\d+,\d+=\d+$", cut.Stdout.Trim());
            var truncated = await StreamsProcess.RunAsync(["stream", "truncate", "timed/events", .. cli]);
            Assert.True(truncated.ExitCode == 0, truncated.Stderr);
            Assert.Empty(await ReadNumbersAsync(client, "timed", "events"));

            var bad = await StreamsProcess.RunAsync(["stream", "truncate", "timed/events", "--at", "garbage", .. cli]);
            Assert.NotEqual(0, bad.ExitCode);
            Assert.Contains("segment-id=offset", bad.Stderr, StringComparison.Ordinal);
        });

    [Fact]
    public Task A_retention_policy_added_later_drops_old_data_and_removing_it_keeps_everything_from_then_on() =>
        WithStandaloneAsync("retention-update", _ => [], async (dir, server) =>
        {
            string[] cli = ["--controller", server.ControllerUri];
            var created = await StreamsProcess.RunAsync(["stream", "create", "later/events", "--create-scope", "--segments", "2", .. cli]);
            Assert.True(created.ExitCode == 0, created.Stderr);
            await using var client = StreamsClient.Create(server.ControllerUri);
            await using var writer = await client.CreateWriterAsync("later", "events", Serializers.Utf8);
            await WriteAsync(writer, 0, 1000); // ~1 MB
            await Task.Delay(1000); // retention rounds go by: without a policy nothing goes
            Assert.Equal(1000, (await ReadNumbersAsync(client, "later", "events")).Count);

            var sized = await StreamsProcess.RunAsync(["stream", "update", "later/events", "--retention-size", "300KiB", .. cli]);
            Assert.True(sized.ExitCode == 0, sized.Stderr);
            Assert.Contains("retain:   307,200 bytes", sized.Stdout, StringComparison.Ordinal);
            await Task.Delay(1500); // the controller records the tail under the new policy
            await WriteAsync(writer, 1000, 500);
            List<int> kept = [];
            await WaitUntilAsync(async () => (kept = await ReadNumbersAsync(client, "later", "events")).Min() >= 1000, "the data before the policy's first cut is dropped");
            Assert.True(kept.Count * 1000L >= 300 * 1024, $"Only {kept.Count} events are kept; the policy keeps at least 300 KiB.");
            Assert.All(kept.GroupBy(n => n % 4), key => Assert.Equal(Enumerable.Range(key.Min(), 1500 - key.Min()).Where(n => n % 4 == key.Key), key.Order()));

            var removed = await StreamsProcess.RunAsync(["stream", "update", "later/events", "--no-retention", .. cli]);
            Assert.True(removed.ExitCode == 0, removed.Stderr);
            Assert.Contains("retain:   everything", removed.Stdout, StringComparison.Ordinal);
            var before = (await ReadNumbersAsync(client, "later", "events")).Count;
            await WriteAsync(writer, 1500, 500);
            await Task.Delay(1500);
            Assert.Equal(before + 500, (await ReadNumbersAsync(client, "later", "events")).Count);

            var neither = await StreamsProcess.RunAsync(["stream", "update", "later/events", .. cli]);
            Assert.NotEqual(0, neither.ExitCode);
            Assert.Contains("Give one of --retention-time, --retention-size, --retention-consumed or --no-retention", neither.Stderr, StringComparison.Ordinal);
            var scaling = await client.Streams.DescribeStreamAsync("later", "events");
            Assert.Equal(2, scaling.SegmentCount);
        });

    [Fact]
    public Task A_size_retention_policy_truncates_old_data_automatically_and_keeps_at_least_the_limit() =>
        WithStandaloneAsync("retention-size", _ => [], async (dir, server) =>
        {
            await using var client = StreamsClient.Create(server.ControllerUri);
            await client.Streams.CreateScopeAsync("retention");
            const long limit = 500_000;
            await client.Streams.CreateStreamAsync("retention", "sized", StreamConfig.Fixed(2) with { Retention = RetentionPolicy.BySize(limit) });
            await using var writer = await client.CreateWriterAsync("retention", "sized", Serializers.Utf8);
            for (var round = 0; round < 8; round++)
            {
                await WriteAsync(writer, round * 500, 500); // ~500 KB a round
                await Task.Delay(400); // lets the controller record a cut between rounds
            }

            List<int> numbers = [];
            await WaitUntilAsync(async () => (numbers = await ReadNumbersAsync(client, "retention", "sized")).Count < 4000, "old data is dropped");
            var kept = numbers.Order().ToList();
            Assert.True(kept.Count * 1000L >= limit, $"Only {kept.Count} events ({kept.Count * 1000L} bytes) are kept; the policy keeps at least {limit}.");
            foreach (var key in kept.GroupBy(n => n % 4))
            {
                // Each key lost a prefix, never a piece in the middle or the end.
                var first = key.Min();
                Assert.Equal(Enumerable.Range(0, 4000).Where(n => n % 4 == key.Key && n >= first), key.Order());
            }
        });

    [Fact]
    public Task Retention_that_follows_consumption_keeps_data_until_the_subscribed_group_checkpointed_past_it() =>
        WithStandaloneAsync("retention-consumption", dir => ["--tier2", "file://" + dir.Sub("tier2")], async (dir, server) =>
        {
            var ct = TestContext.Current.CancellationToken;
            await using var client = StreamsClient.Create(server.ControllerUri);
            await client.Streams.CreateScopeAsync("consumed", ct);
            using var channel = Streams.Common.Grpc.GrpcChannels.Create(server.ControllerUri);
            var controller = new Contracts.Controller.Controller.ControllerClient(channel);
            await controller.CreateStreamAsync(new Contracts.Controller.CreateStreamRequest
            {
                Scope = "consumed", Stream = "events",
                Config = new Contracts.Controller.StreamConfiguration
                {
                    Scaling = new Contracts.Controller.ScalingPolicy { Fixed = new Contracts.Controller.FixedScaling { SegmentCount = 2 } },
                    Retention = new Contracts.Controller.RetentionPolicy { Consumption = new Contracts.Controller.ConsumptionRetention() },
                },
            }, cancellationToken: ct);
            var groups = new Contracts.Controller.ReaderGroups.ReaderGroupsClient(channel);
            await groups.CreateReaderGroupAsync(new Contracts.Controller.CreateReaderGroupRequest
            {
                Scope = "consumed", Group = "archiver",
                Config = new Contracts.Controller.ReaderGroupConfig
                {
                    Streams = { new Contracts.Controller.ReaderGroupStream { Scope = "consumed", Stream = "events" } },
                    HeartbeatIntervalMs = 500, SessionTimeoutMs = 5000, Retention = Contracts.Controller.GroupRetention.AtLastCheckpoint,
                },
            }, cancellationToken: ct);

            await using var writer = await client.CreateWriterAsync("consumed", "events", Serializers.Utf8, cancellationToken: ct);
            await WriteAsync(writer, 0, 1000);
            var read = 0;
            using (var reader = Node.StartWithLines("group-reader.js", line => { if (line.StartsWith("{\"event\"", StringComparison.Ordinal)) { Interlocked.Increment(ref read); } },
                server.GrpcPort.ToString(CultureInfo.InvariantCulture), "consumed", "archiver", "js-archiver", "60000", "lines"))
            {
                await WaitUntilAsync(() => Task.FromResult(Volatile.Read(ref read) >= 1000), "the group reads the first 1000 events");

                // Read, but not checkpointed: retention rounds go by and nothing goes.
                await Task.Delay(1500, ct);
                Assert.Equal(1000, (await ReadNumbersAsync(client, "consumed", "events")).Count);

                var checkpoint = await groups.CreateCheckpointAsync(new Contracts.Controller.CreateCheckpointRequest { Scope = "consumed", Group = "archiver", Name = "first-1000" }, cancellationToken: ct);
                Assert.Equal(1000L * 1010, checkpoint.Cuts[0].Positions.Values.Sum(), 1000L * 1010 / 10.0);
                reader.Kill();
            }

            await WriteAsync(writer, 1000, 500);
            await WaitUntilAsync(async () => (await ReadNumbersAsync(client, "consumed", "events")).Min() >= 1000, "the checkpointed events are dropped");
            Assert.Equal(Enumerable.Range(1000, 500), (await ReadNumbersAsync(client, "consumed", "events")).Order());
        });
}
