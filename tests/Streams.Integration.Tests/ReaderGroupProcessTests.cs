using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Streams.Client;
using SdkGroupConfig = Streams.Client.ReaderGroups.ReaderGroupConfig;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using Streams.Testing;
using ReaderGroupsClient = Streams.Contracts.Controller.ReaderGroups.ReaderGroupsClient;

namespace Streams.Integration.Tests;

/// <summary>
/// Reader groups on a real <c>streams standalone</c> process, read by readers in another language: grpc-js readers
/// (tests/interop/group-reader.js, written from docs/wire-protocol.md and the .proto files alone) share a stream's
/// segments as the controller assigns them, and every event is read exactly once; a reader SIGKILLed mid-stream has
/// its segments taken over from its committed positions once its session expires.
/// </summary>
public sealed class ReaderGroupProcessTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const string Script = "group-reader.js";

    [Fact]
    public async Task Two_grpcjs_readers_in_one_group_share_the_segments_and_read_every_event_exactly_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg", ct);
        await client.Streams.CreateStreamAsync("rg", "events", StreamConfig.Fixed(4), ct);
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        var created = await groups.CreateReaderGroupAsync(new CreateReaderGroupRequest
        {
            Scope = "rg", Group = "billing",
            Config = new ReaderGroupConfig { Streams = { new ReaderGroupStream { Scope = "rg", Stream = "events" } }, HeartbeatIntervalMs = 1000, SessionTimeoutMs = 10_000 },
        }, cancellationToken: ct);
        Assert.True(created.Created);

        // Both readers join first; the stream is written and sealed while they read, so each follows its segments' tails.
        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var readers = new[] { "js-a", "js-b" }.Select(id => Node.RunJsonAsync(Script, port, "rg", "billing", id, "50000")).ToList();
        ReaderGroupInfo described = null!;
        for (var i = 0; i < 200; i++)
        {
            described = await groups.DescribeReaderGroupAsync(new ReaderGroupRef { Scope = "rg", Group = "billing" }, cancellationToken: ct);
            if (described.Members.Count == 2 && described.Members.All(m => m.SegmentIds.Count == 2))
            {
                break;
            }

            await Task.Delay(100, ct);
        }

        Assert.True(described.Members.Count == 2 && described.Members.All(m => m.SegmentIds.Count == 2),
            $"The readers did not come to own two segments each within 20 s: {described}");

        const int Events = 3000;
        await using (var writer = await client.CreateWriterAsync("rg", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            await Task.WhenAll(Enumerable.Range(0, Events).Select(i => writer.WriteEventAsync("k" + (i % 32), $"k{i % 32}:{i}", ct)));
        }

        await client.Streams.SealStreamAsync("rg", "events", ct);
        var results = await Task.WhenAll(readers);

        var read = results.SelectMany(r => r.GetProperty("events").EnumerateArray().Select(e => (
            Segment: e.GetProperty("segment").GetString()!, Offset: e.GetProperty("offset").GetInt64(),
            Key: e.GetProperty("key").GetString()!, Value: e.GetProperty("payload").GetString()!))).ToList();
        Assert.All(results, r => Assert.True(r.GetProperty("ended").GetBoolean(), "A reader stopped before EndOfGroup."));
        Assert.All(results, r => Assert.NotEmpty(r.GetProperty("events").EnumerateArray()));
        Assert.Equal(Enumerable.Range(0, Events), read.Select(e => int.Parse(e.Value.Split(':')[1], CultureInfo.InvariantCulture)).Order());
        Assert.Equal(read.Count, read.Select(e => (e.Segment, e.Offset)).Distinct().Count());

        // Each key's events, in the order of their positions, are in the order written.
        foreach (var key in read.GroupBy(e => e.Key))
        {
            var order = key.OrderBy(e => e.Offset).Select(e => int.Parse(e.Value.Split(':')[1], CultureInfo.InvariantCulture)).ToList();
            Assert.Single(key.Select(e => e.Segment).Distinct());
            Assert.Equal(order.Order(), order);
        }

        var ended = await groups.DescribeReaderGroupAsync(new ReaderGroupRef { Scope = "rg", Group = "billing" }, cancellationToken: ct);
        Assert.True(ended.Ended, $"The group did not end: {ended}");
        Assert.Empty(ended.Members);
        Assert.Equal(0, ended.UnreadBytes);
        TestContext.Current.TestOutputHelper?.WriteLine(JsonSerializer.Serialize(results.Select(r => new
        {
            events = r.GetProperty("events").GetArrayLength(), assigned = r.GetProperty("assigned").GetArrayLength(), revoked = r.GetProperty("revoked").GetArrayLength(),
        })));
    }

    [Fact]
    public async Task A_reader_SIGKILLed_mid_stream_has_its_segments_resumed_by_another_from_its_commits_after_the_session_timeout()
    {
        var ct = TestContext.Current.CancellationToken;
        const int SessionTimeoutMs = 3000;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg-kill", ct);
        await client.Streams.CreateStreamAsync("rg-kill", "events", StreamConfig.Fixed(2), ct);
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        var reference = new ReaderGroupRef { Scope = "rg-kill", Group = "billing" };
        await CreateGroupAsync(groups, "rg-kill", "billing", SessionTimeoutMs, ct);

        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var byA = new ConcurrentQueue<(string Segment, long Offset, int Index)>();
        using var readerA = StartLineReader(byA, port, "rg-kill", "billing", "js-a", "60000", "lines");
        await WaitUntilAsync(async () => (await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Members is [{ SegmentIds.Count: 2 }], "reader a owns both segments", ct);

        const int Events = 4000;
        await using var writer = await client.CreateWriterAsync("rg-kill", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
        // Written in steps of 40 events every 20 ms (about 8 s in all), so reader a dies while events keep coming.
        var writing = WritePacedAsync(writer, Events, step: 40, keys: 16, TimeSpan.FromMilliseconds(20), ct);
        await WaitUntilAsync(() => Task.FromResult(byA.Count >= Events / 3), "reader a reads", ct);
        readerA.Kill();
        var killed = Stopwatch.StartNew();
        await readerA.WaitForExitAsync(ct);
        var committed = (await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Segments.ToDictionary(s => s.Segment, s => s.CommittedOffset);
        var readerB = Node.RunJsonAsync(Script, port, "rg-kill", "billing", "js-b", "50000");
        Assert.False(writing.IsCompleted, "The writer finished before reader a was killed: the test no longer kills it mid-stream.");
        await WaitUntilAsync(async () => (await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Members is [{ ReaderId: "js-b", SegmentIds.Count: 2 }], "reader b owns both segments", ct);
        var takeover = killed.Elapsed;
        await writing;
        await client.Streams.SealStreamAsync("rg-kill", "events", ct);
        var byB = (await readerB).GetProperty("events").EnumerateArray()
            .Select(e => (Segment: e.GetProperty("segment").GetString()!, Offset: e.GetProperty("offset").GetInt64(), Index: IndexOf(e.GetProperty("payload").GetString()!))).ToList();
        var again = byA.Select(e => e.Index).Intersect(byB.Select(e => e.Index)).Count();
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"reader a read {byA.Count} events before SIGKILL; reader b owned its segments {takeover.TotalSeconds:F2} s later and read {byB.Count}, {again} of them read by a already (after its last commit)");

        // Nothing lost: every event was read by a (before it died) or b.
        Assert.Equal(Enumerable.Range(0, Events), byA.Select(e => e.Index).Concat(byB.Select(e => e.Index)).Distinct().Order());
        Assert.Equal(byB.Count, byB.Select(e => (e.Segment, e.Offset)).Distinct().Count());
        foreach (var (segment, offset) in committed)
        {
            // b resumed each segment exactly at a's last commit: what a read beyond it is read again (at-least-once),
            // nothing before it is.
            var resumed = byB.Where(e => e.Segment == segment).ToList();
            Assert.NotEmpty(resumed);
            Assert.Equal(offset, resumed.Min(e => e.Offset));
            Assert.All(byA.Where(e => e.Segment == segment && e.Offset < offset), e => Assert.DoesNotContain(e.Index, resumed.Select(r => r.Index)));
        }

        // Taken over once the session expired, and soon after.
        Assert.InRange(takeover, TimeSpan.FromMilliseconds(SessionTimeoutMs - 1000), TimeSpan.FromMilliseconds(SessionTimeoutMs) + TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_stream_that_splits_and_merges_under_two_grpcjs_readers_keeps_each_keys_order_in_the_order_read()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg-scale", ct);
        await client.Streams.CreateStreamAsync("rg-scale", "events", StreamConfig.Fixed(2), ct);
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        var reference = new ReaderGroupRef { Scope = "rg-scale", Group = "billing" };
        await CreateGroupAsync(groups, "rg-scale", "billing", 5000, ct);

        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var processed = new ConcurrentQueue<(string Segment, string Key, int Index, double Time)>();
        void OnLine(string line)
        {
            if (line.StartsWith("{\"event\"", StringComparison.Ordinal))
            {
                var e = JsonDocument.Parse(line).RootElement.GetProperty("event");
                processed.Enqueue((e.GetProperty("segment").GetString()!, e.GetProperty("key").GetString()!, IndexOf(e.GetProperty("payload").GetString()!), e.GetProperty("t").GetDouble()));
            }
        }

        using var readerA = Node.StartWithLines(Script, OnLine, port, "rg-scale", "billing", "js-a", "60000", "lines");
        using var readerB = Node.StartWithLines(Script, OnLine, port, "rg-scale", "billing", "js-b", "60000", "lines");
        await WaitUntilAsync(async () => (await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Members is [{ SegmentIds.Count: 1 }, { SegmentIds.Count: 1 }], "each reader owns a segment", ct);

        const int Events = 6000;
        await using var writer = await client.CreateWriterAsync("rg-scale", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
        async Task WriteAsync(int from, int to)
        {
            for (var i = from; i < to; i += 50)
            {
                await Task.WhenAll(Enumerable.Range(i, 50).Select(j => writer.WriteEventAsync("k" + (j % 32), $"{j}:k{j % 32}", ct)));
                await Task.Delay(10, ct);
            }
        }

        // Split the lower segment while both readers read, then merge its two halves back.
        await WriteAsync(0, Events / 3);
        var lower = (await client.Streams.DescribeStreamAsync("rg-scale", "events", ct)).ActiveSegments.OrderBy(x => x.KeyStart).First();
        await client.Streams.ScaleStreamAsync("rg-scale", "events", [lower.Id], [(lower.KeyStart, 0.25), (0.25, lower.KeyEnd)], ct);
        await WriteAsync(Events / 3, 2 * Events / 3);
        var halves = (await client.Streams.DescribeStreamAsync("rg-scale", "events", ct)).ActiveSegments.OrderBy(x => x.KeyStart).Take(2).ToList();
        await client.Streams.ScaleStreamAsync("rg-scale", "events", [.. halves.Select(h => h.Id)], [(halves[0].KeyStart, halves[1].KeyEnd)], ct);
        await WriteAsync(2 * Events / 3, Events);
        await client.Streams.SealStreamAsync("rg-scale", "events", ct);
        await Task.WhenAll(readerA.WaitForExitAsync(ct), readerB.WaitForExitAsync(ct)).WaitAsync(TimeSpan.FromSeconds(60), ct);
        Assert.Equal((0, 0), (readerA.ExitCode, readerB.ExitCode));

        var events = processed.ToList();
        Assert.Equal(Enumerable.Range(0, Events), events.Select(e => e.Index).Order());
        Assert.Equal(5, events.Select(e => e.Segment).Distinct().Count());
        foreach (var key in events.GroupBy(e => e.Key))
        {
            // In the order the readers processed them, across both readers and three epochs.
            var order = key.OrderBy(e => e.Time).Select(e => e.Index).ToList();
            Assert.True(order.SequenceEqual(order.Order()), $"Key {key.Key} was processed out of order: {string.Join(",", order.Take(40))}…");
        }

        Assert.True((await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Ended);
    }

    [Fact]
    public async Task Dotnet_sdk_readers_and_a_grpcjs_reader_share_one_group_and_no_event_is_read_by_two()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg-mixed", ct);
        await client.Streams.CreateStreamAsync("rg-mixed", "events", StreamConfig.Fixed(6), ct);
        Assert.True(await client.CreateReaderGroupAsync("rg-mixed", "billing",
            SdkGroupConfig.For("rg-mixed/events") with { HeartbeatInterval = TimeSpan.FromMilliseconds(500), SessionTimeout = TimeSpan.FromSeconds(5) }, ct));

        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var js = Node.RunJsonAsync(Script, port, "rg-mixed", "billing", "js", "50000");
        var dotnet = new[] { "dotnet-1", "dotnet-2" }.Select(id => Task.Run(async () =>
        {
            var read = new List<(string Segment, long Offset, string Value)>();
            await using var reader = client.CreateReader("rg-mixed", "billing", id, Serializers.Utf8);
            await foreach (var e in reader.ReadAsync(ct))
            {
                read.Add((e.Position.Segment, e.Position.Offset, e.Value));
            }

            return read;
        }, ct)).ToList();
        await WaitUntilAsync(async () => (await client.DescribeReaderGroupAsync("rg-mixed", "billing", ct)).Readers.Count == 3, "three readers joined", ct);

        const int Events = 3000;
        await using (var writer = await client.CreateWriterAsync("rg-mixed", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            await Task.WhenAll(Enumerable.Range(0, Events).Select(i => writer.WriteEventAsync("k" + (i % 48), $"{i}:k{i % 48}", ct)));
        }

        await client.Streams.SealStreamAsync("rg-mixed", "events", ct);
        var byJs = (await js).GetProperty("events").EnumerateArray()
            .Select(e => (Segment: e.GetProperty("segment").GetString()!, Offset: e.GetProperty("offset").GetInt64(), Value: e.GetProperty("payload").GetString()!)).ToList();
        var byDotnet = (await Task.WhenAll(dotnet)).ToList();
        TestContext.Current.TestOutputHelper?.WriteLine($"grpc-js read {byJs.Count}, the .NET readers {string.Join(" and ", byDotnet.Select(r => r.Count))}");

        var all = byDotnet.SelectMany(r => r).Concat(byJs).ToList();
        Assert.Equal(Enumerable.Range(0, Events), all.Select(e => IndexOf(e.Value)).Order());
        Assert.Equal(all.Count, all.Select(e => (e.Segment, e.Offset)).Distinct().Count());
        Assert.NotEmpty(byJs);
        Assert.All(byDotnet, r => Assert.NotEmpty(r));
        Assert.True((await client.DescribeReaderGroupAsync("rg-mixed", "billing", ct)).Ended);
    }

    [Fact]
    public async Task A_checkpoint_taken_while_a_grpcjs_reader_reads_then_a_reset_to_it_reads_again_from_exactly_there()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg-cp", ct);
        await client.Streams.CreateStreamAsync("rg-cp", "events", StreamConfig.Fixed(3), ct);
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        var reference = new ReaderGroupRef { Scope = "rg-cp", Group = "audit" };
        await CreateGroupAsync(groups, "rg-cp", "audit", 30_000, ct);

        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var byA = new ConcurrentQueue<(string Segment, long Offset, int Index)>();
        using var readerA = StartLineReader(byA, port, "rg-cp", "audit", "js-a", "60000", "lines");
        await WaitUntilAsync(async () => (await groups.DescribeReaderGroupAsync(reference, cancellationToken: ct)).Members is [{ SegmentIds.Count: 3 }], "reader a owns the segments", ct);

        const int Events = 3000;
        await using var writer = await client.CreateWriterAsync("rg-cp", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
        var writing = WritePacedAsync(writer, Events, step: 30, keys: 12, TimeSpan.FromMilliseconds(15), ct);

        // Mid-stream: the checkpoint holds what reader a had processed when it answered.
        await WaitUntilAsync(() => Task.FromResult(byA.Count >= Events / 3), "reader a reads", ct);
        var checkpoint = await groups.CreateCheckpointAsync(new CreateCheckpointRequest { Scope = "rg-cp", Group = "audit", Name = "mid", TimeoutMs = 10_000 }, cancellationToken: ct);
        Assert.True(checkpoint.Complete);
        var cut = Assert.Single(checkpoint.Cuts).Positions.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(3, cut.Count);
        await WaitUntilAsync(() => Task.FromResult(byA.Count >= 2 * Events / 3), "reader a reads past the checkpoint", ct);
        readerA.Kill();
        await readerA.WaitForExitAsync(ct);
        Assert.True((await groups.ReaderOfflineAsync(new ReaderOfflineRequest { Scope = "rg-cp", Group = "audit", ReaderId = "js-a" }, cancellationToken: ct)).Removed);
        await writing;
        await client.Streams.SealStreamAsync("rg-cp", "events", ct);

        var reset = await groups.ResetReaderGroupAsync(new ResetReaderGroupRequest { Scope = "rg-cp", Group = "audit", Cuts = { checkpoint.Cuts } }, cancellationToken: ct);
        Assert.Equal(1, reset.Generation);
        Assert.Equal(cut, reset.Segments.ToDictionary(x => x.SegmentId, x => x.CommittedOffset));
        var byB = (await Node.RunJsonAsync(Script, port, "rg-cp", "audit", "js-b", "50000")).GetProperty("events").EnumerateArray()
            .Select(e => (Segment: e.GetProperty("segment").GetString()!, Offset: e.GetProperty("offset").GetInt64(), Index: IndexOf(e.GetProperty("payload").GetString()!))).ToList();

        // b read each segment from exactly the checkpoint: everything at or after it, once, and nothing before it.
        var idOf = reset.Segments.ToDictionary(x => x.Segment, x => x.SegmentId);
        Assert.Equal(byB.Count, byB.Select(e => (e.Segment, e.Offset)).Distinct().Count());
        foreach (var group in byB.GroupBy(e => e.Segment))
        {
            Assert.Equal(cut[idOf[group.Key]], group.Min(e => e.Offset));
        }

        var beforeCut = byA.Where(e => e.Offset < cut[idOf[e.Segment]]).Select(e => e.Index).ToList();
        Assert.Equal(Enumerable.Range(0, Events), beforeCut.Concat(byB.Select(e => e.Index)).Order());
        var reread = byA.Where(e => e.Offset >= cut[idOf[e.Segment]]).Select(e => e.Index).ToList();
        Assert.NotEmpty(reread);
        Assert.Subset(byB.Select(e => e.Index).ToHashSet(), reread.ToHashSet());
        TestContext.Current.TestOutputHelper?.WriteLine($"checkpoint after {beforeCut.Count} events; a read {reread.Count} past it before SIGKILL; b read {byB.Count} from the checkpoint");
    }

    [Fact]
    public async Task A_group_bounded_by_an_end_cut_reads_up_to_the_cut_and_ends_while_the_stream_goes_on()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("rg-bounded", ct);
        await client.Streams.CreateStreamAsync("rg-bounded", "events", StreamConfig.Fixed(2), ct);
        await using var writer = await client.CreateWriterAsync("rg-bounded", "events", Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }, ct);
        async Task WriteAsync(int from, int to) =>
            await Task.WhenAll(Enumerable.Range(from, to - from).Select(j => writer.WriteEventAsync("k" + (j % 8), $"{j}:k{j % 8}", ct)));

        // Events 0-999, a cut; 1000-1499, a split; 1500-1999 (the stream stays open).
        await WriteAsync(0, 1000);
        var start = await client.Streams.GetStreamCutAsync("rg-bounded", "events", ct);
        await WriteAsync(1000, 1500);
        var end = await client.Streams.GetStreamCutAsync("rg-bounded", "events", ct);
        var upper = (await client.Streams.DescribeStreamAsync("rg-bounded", "events", ct)).ActiveSegments.OrderBy(x => x.KeyStart).Last();
        await client.Streams.ScaleStreamAsync("rg-bounded", "events", [upper.Id], [(upper.KeyStart, 0.75), (0.75, upper.KeyEnd)], ct);
        await WriteAsync(1500, 2000);

        static Contracts.Controller.StreamCut Cut(Client.StreamCut c)
        {
            var cut = new Contracts.Controller.StreamCut { Scope = c.Scope, Stream = c.Stream };
            foreach (var (id, offset) in c.Positions)
            {
                cut.Positions[id] = offset;
            }

            return cut;
        }

        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var groups = new ReaderGroupsClient(channel);
        await groups.CreateReaderGroupAsync(new CreateReaderGroupRequest
        {
            Scope = "rg-bounded", Group = "slice",
            Config = new ReaderGroupConfig
            {
                Streams = { new ReaderGroupStream { Scope = "rg-bounded", Stream = "events", Start = Cut(start), End = Cut(end) } },
                HeartbeatIntervalMs = 500, SessionTimeoutMs = 5000,
            },
        }, cancellationToken: ct);
        var port = fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        var results = await Task.WhenAll(Node.RunJsonAsync(Script, port, "rg-bounded", "slice", "js-a", "30000"), Node.RunJsonAsync(Script, port, "rg-bounded", "slice", "js-b", "30000"));
        Assert.All(results, r => Assert.True(r.GetProperty("ended").GetBoolean()));
        var read = results.SelectMany(r => r.GetProperty("events").EnumerateArray().Select(e => IndexOf(e.GetProperty("payload").GetString()!))).ToList();
        Assert.Equal(Enumerable.Range(1000, 500), read.Order());
        Assert.True((await groups.DescribeReaderGroupAsync(new ReaderGroupRef { Scope = "rg-bounded", Group = "slice" }, cancellationToken: ct)).Ended);
    }

    private static Task CreateGroupAsync(ReaderGroupsClient groups, string scope, string group, int sessionTimeoutMs, CancellationToken ct) =>
        groups.CreateReaderGroupAsync(new CreateReaderGroupRequest
        {
            Scope = scope, Group = group,
            Config = new ReaderGroupConfig { Streams = { new ReaderGroupStream { Scope = scope, Stream = "events" } }, HeartbeatIntervalMs = 500, SessionTimeoutMs = sessionTimeoutMs },
        }, cancellationToken: ct).ResponseAsync;

    /// <summary>A grpc-js reader in lines mode: each event it processes goes to <paramref name="read"/> as it prints it.</summary>
    private static System.Diagnostics.Process StartLineReader(ConcurrentQueue<(string Segment, long Offset, int Index)> read, string port, params string[] args) =>
        Node.StartWithLines(Script, line =>
        {
            if (line.StartsWith("{\"event\"", StringComparison.Ordinal))
            {
                var e = JsonDocument.Parse(line).RootElement.GetProperty("event");
                read.Enqueue((e.GetProperty("segment").GetString()!, e.GetProperty("offset").GetInt64(), IndexOf(e.GetProperty("payload").GetString()!)));
            }
        }, [port, .. args]);

    /// <summary>"{i}:k{i % keys}" events routed by "k{i % keys}", <paramref name="step"/> at a time with a pause between.</summary>
    private static Task WritePacedAsync(EventStreamWriter<string> writer, int events, int step, int keys, TimeSpan pause, CancellationToken ct) => Task.Run(async () =>
    {
        for (var i = 0; i < events; i += step)
        {
            await Task.WhenAll(Enumerable.Range(i, step).Select(j => writer.WriteEventAsync("k" + (j % keys), $"{j}:k{j % keys}", ct)));
            await Task.Delay(pause, ct);
        }
    }, ct);

    private static int IndexOf(string value) => int.Parse(value.Split(':')[0], CultureInfo.InvariantCulture);

    /// <summary>Waits until <paramref name="condition"/> holds, at most 20 s in steps of 100 ms.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, CancellationToken ct)
    {
        for (var i = 0; i < 200; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(100, ct);
        }

        Assert.Fail($"Timed out after 20 s waiting until {what}.");
    }
}
