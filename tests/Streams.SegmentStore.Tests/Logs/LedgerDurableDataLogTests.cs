using Streams.Ledger;
using Streams.SegmentStore.Logs;
using Streams.Testing;

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
}
