using Microsoft.Extensions.Logging.Abstractions;
using Streams.Ledger;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;
using Streams.SegmentStore.Reading;
using Streams.Testing;
using Streams.Tier2.FileSystem;

namespace Streams.SegmentStore.Tests.Logs;

public sealed class LedgerDurableDataLogTests : IDisposable
{
    private readonly TempDirectory _dir = new("ledger-log");

    public void Dispose() => _dir.Dispose();

    private static byte[] Record(int i) => System.Text.Encoding.UTF8.GetBytes($"record-{i:D5}");

    private static async Task<List<string>> ReadAllAsync(IDurableDataLog log)
    {
        var records = new List<string>();
        await foreach (var record in log.ReadAllAsync())
        {
            using (record)
            {
                records.Add(System.Text.Encoding.UTF8.GetString(record.Memory.Span));
            }
        }

        return records;
    }

    [Fact]
    public async Task Records_survive_rollovers_and_owner_changes_in_order()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var first = logs.Log(3, rolloverSize: 100);
        await first.OpenAsync();
        var addresses = new List<LogAddress>();
        for (var i = 0; i < 50; i++)
        {
            addresses.Add(await first.AppendAsync(Record(i)));
        }

        // Appends in flight during a rollover queue behind it and keep their order.
        addresses.AddRange(await Task.WhenAll(Enumerable.Range(50, 30).Select(i => first.AppendAsync(Record(i)).AsTask())));
        Assert.Equal(addresses.Order(), addresses);
        Assert.True(addresses.Select(a => a.LedgerId).Distinct().Count() > 3, "A 100-byte rollover size should spread 50 records over several ledgers.");

        // A new owner takes over without the old one closing anything.
        var second = logs.Log(3);
        await second.OpenAsync();
        Assert.Equal(Enumerable.Range(0, 80).Select(i => $"record-{i:D5}"), await ReadAllAsync(second));
        using var random = await second.ReadAsync(addresses[17]);
        Assert.Equal("record-00017", System.Text.Encoding.UTF8.GetString(random.Memory.Span));
    }

    [Fact]
    public async Task The_old_owner_can_append_nothing_after_a_takeover()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var zombie = logs.Log(1);
        await zombie.OpenAsync();
        await zombie.AppendAsync(Record(0));

        var owner = logs.Log(1);
        await owner.OpenAsync();
        await Assert.ThrowsAnyAsync<LedgerException>(() => zombie.AppendAsync(Record(1)).AsTask());
        await owner.AppendAsync(Record(2));

        var reader = logs.Log(1);
        await reader.OpenAsync();
        Assert.Equal(["record-00000", "record-00002"], await ReadAllAsync(reader));
    }

    [Fact]
    public async Task Truncation_drops_whole_ledgers_before_the_point()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var log = logs.Log(2, rolloverSize: 30);
        await log.OpenAsync();
        var addresses = new List<LogAddress>();
        for (var i = 0; i < 20; i++)
        {
            addresses.Add(await log.AppendAsync(Record(i)));
        }

        await log.TruncateAsync(addresses[10]);
        var reopened = logs.Log(2);
        await reopened.OpenAsync();
        var remaining = await ReadAllAsync(reopened);
        Assert.Equal(Enumerable.Range(10, 10).Select(i => $"record-{i:D5}"), remaining);
        var chain = LogMetadata.FromJson((await logs.Metadata.GetAsync(LogMetadata.PathOf(2)))!.Value.Data);
        Assert.DoesNotContain(chain.Ledgers, l => l < addresses[10].LedgerId);
    }

    [Fact]
    public async Task Truncation_and_rollover_at_once_never_cost_ownership()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var log = logs.Log(4, rolloverSize: 200);
        await log.OpenAsync();
        var addresses = new List<LogAddress>();
        for (var i = 0; i < 10; i++)
        {
            addresses.Add(await log.AppendAsync(Record(i)));
        }

        // The truncation's compare-and-set is held in the store while a rollover wants the chain too.
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sets = 0;
        logs.Intercepted.Path = LogMetadata.PathOf(4);
        logs.Intercepted.OnSet = async set =>
        {
            if (Interlocked.Increment(ref sets) == 1)
            {
                held.SetResult();
                await release.Task;
            }
            else
            {
                second.TrySetResult();
            }

            return await set();
        };

        var truncation = log.TruncateAsync(addresses[5]).AsTask();
        await held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var appends = Task.WhenAll(Enumerable.Range(10, 10).Select(i => log.AppendAsync(Record(i)).AsTask()));

        // Unfixed, the rollover's compare-and-set reaches the store now, from the version the truncation also used.
        // Fixed, it waits for the truncation; then this wait just runs out.
        await Task.WhenAny(second.Task, Task.Delay(TimeSpan.FromSeconds(1)));
        release.SetResult();
        await truncation;
        addresses.AddRange(await appends);
        Assert.Equal(addresses.Order(), addresses);
        Assert.True(addresses[^1].LedgerId > addresses[0].LedgerId, "A 200-byte rollover size should have moved the log to a new ledger.");
        Assert.Equal(2, sets);

        await log.CheckOwnershipAsync();
        addresses.Add(await log.AppendAsync(Record(20)));
        var chain = LogMetadata.FromJson((await logs.Metadata.GetAsync(LogMetadata.PathOf(4)))!.Value.Data);
        Assert.Equal((addresses[5].LedgerId, addresses[5].EntryId), (chain.TruncatedLedger, chain.TruncatedEntry));
        Assert.Contains(addresses[^1].LedgerId, chain.Ledgers);

        var next = logs.Log(4);
        await next.OpenAsync();
        Assert.Equal(Enumerable.Range(5, 16).Select(i => $"record-{i:D5}"), await ReadAllAsync(next));
    }

    [Fact]
    public async Task A_chain_update_whose_answer_was_lost_is_not_taken_for_a_new_owner()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var log = logs.Log(6, rolloverSize: 100);
        await log.OpenAsync();
        var addresses = new List<LogAddress>();
        for (var i = 0; i < 10; i++)
        {
            addresses.Add(await log.AppendAsync(Record(i)));
        }

        // The store takes the truncation, then the connection breaks before its answer arrives.
        logs.Intercepted.Path = LogMetadata.PathOf(6);
        logs.Intercepted.OnSet = async set =>
        {
            logs.Intercepted.OnSet = null;
            await set();
            throw new IOException("connection lost (injected)");
        };

        await Assert.ThrowsAsync<IOException>(() => log.TruncateAsync(addresses[2]).AsTask());

        // The next chain updates start from a version the log never saw written, yet the chain is still its own.
        for (var i = 10; i < 40; i++)
        {
            addresses.Add(await log.AppendAsync(Record(i)));
        }

        await log.TruncateAsync(addresses[20]);
        await log.CheckOwnershipAsync();
        addresses.Add(await log.AppendAsync(Record(40)));

        var next = logs.Log(6);
        await next.OpenAsync();
        Assert.Equal(Enumerable.Range(20, 21).Select(i => $"record-{i:D5}"), await ReadAllAsync(next));
    }

    [Fact]
    public async Task A_new_owner_makes_the_old_owners_chain_updates_fail_as_lost_ownership()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var zombie = logs.Log(7);
        await zombie.OpenAsync();
        var address = await zombie.AppendAsync(Record(0));

        var owner = logs.Log(7);
        await owner.OpenAsync();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => zombie.TruncateAsync(address).AsTask());
        Assert.Contains("lost ownership", error.Message);
        Assert.Contains($"this owner has {zombie.Epoch}", error.Message);
        await owner.AppendAsync(Record(1));
    }

    [Fact]
    public async Task Recovery_reads_ahead_and_returns_every_record_in_order_whatever_the_window()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var log = logs.Log(8, rolloverSize: 2000);
        await log.OpenAsync();
        var addresses = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => log.AppendAsync(Record(i)).AsTask()));
        await log.TruncateAsync(addresses[123]);

        foreach (var window in new[] { 1L, 100, 1L << 20 })
        {
            var next = logs.Log(8, readAheadSize: window);
            await next.OpenAsync();
            Assert.Equal(Enumerable.Range(123, 377).Select(i => $"record-{i:D5}"), await ReadAllAsync(next));
        }
    }

    [Fact]
    public async Task A_container_on_tiny_ledgers_with_frequent_truncation_keeps_its_log_under_load()
    {
        await using var logs = await LocalLedgerLogs.OpenAsync(_dir.Path);
        var log = logs.Log(9, rolloverSize: 8 * 1024);
        var options = ContainerTesting.Options(flushAge: TimeSpan.FromMilliseconds(20));
        options = options with { Storage = options.Storage with { FlushSize = 8 * 1024, MaxChunkSize = 8 * 1024, CheckpointEvery = 16 * 1024 } };
        await using var container = new SegmentContainer(9, log, new FrameCache(16 << 20), options, NullLogger.Instance,
            new FileChunkStorage(_dir.Sub("tier2")), new ChunkCache(1 << 20));
        await container.StartAsync();
        Assert.True((await container.CreateSegmentAsync(ContainerTesting.Segment)).IsSuccess);

        // Four writers for up to 4 s: a rollover every 8 KiB, a checkpoint and a truncation every 16 KiB or so.
        var until = DateTime.UtcNow.AddSeconds(4);
        var truncations = new HashSet<LogAddress>();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var writer = new Guid(w + 1, 0, 0, new byte[8]);
            for (var n = 0; n < 5_000 && DateTime.UtcNow < until && container.State == ContainerState.Running; n++)
            {
                var outcome = await container.AppendAsync(ContainerTesting.Segment, writer, n, 1, null, ContainerTesting.Event(n));
                Assert.True(outcome.IsSuccess, outcome.Message);
                lock (truncations)
                {
                    truncations.Add(container.TruncatedAt);
                }
            }
        })).ToList();
        await Task.WhenAll(writers);

        TestContext.Current.TestOutputHelper?.WriteLine($"{truncations.Count} truncation points, truncated at {container.TruncatedAt}, {container.GetInfo(ContainerTesting.Segment)!.Length} bytes");
        Assert.Equal(ContainerState.Running, container.State);
        Assert.False(container.Failed.IsCompleted, "The container's log failed under its own rollovers and truncations.");
        await log.CheckOwnershipAsync();
        Assert.True(truncations.Count > 3, $"The log should have been truncated many times (was {truncations.Count}).");
        Assert.True(container.TruncatedAt.LedgerId > 10, $"The log should have rolled over many times (truncated at {container.TruncatedAt}).");
    }
}
