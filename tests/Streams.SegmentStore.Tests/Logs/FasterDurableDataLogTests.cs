using Streams.SegmentStore.Logs;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Logs;

public sealed class FasterDurableDataLogTests : IDisposable
{
    private readonly TempDirectory _dir = new("faster-log");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Appended_records_are_read_back_in_order_after_reopening()
    {
        var addresses = new List<LogAddress>();
        await using (var log = new FasterDurableDataLog(_dir.Path))
        {
            await log.OpenAsync();
            var appends = Enumerable.Range(0, 100).Select(i => log.AppendAsync(Record(i, 1000 + i)).AsTask()).ToList();
            addresses.AddRange(await Task.WhenAll(appends));
        }

        Assert.Equal(addresses.OrderBy(a => a).ToList(), addresses);
        await using var reopened = new FasterDurableDataLog(_dir.Path);
        await reopened.OpenAsync();
        var index = 0;
        await foreach (var record in reopened.ReadAllAsync())
        {
            using (record)
            {
                Assert.Equal(addresses[index], record.Address);
                Assert.Equal(Record(index, 1000 + index), record.Memory.ToArray());
            }

            index++;
        }

        Assert.Equal(100, index);
        using var random = await reopened.ReadAsync(addresses[42]);
        Assert.Equal(Record(42, 1042), random.Memory.ToArray());
    }

    [Fact]
    public async Task Only_one_owner_at_a_time()
    {
        await using var first = new FasterDurableDataLog(_dir.Path);
        await first.OpenAsync();
        await using var second = new FasterDurableDataLog(_dir.Path);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => second.OpenAsync().AsTask());
        Assert.Contains("owned", error.Message);
    }

    [Fact]
    public async Task Records_larger_than_the_limit_are_refused()
    {
        await using var log = new FasterDurableDataLog(_dir.Path);
        await log.OpenAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => log.AppendAsync(new byte[log.MaxRecordSize + 1]).AsTask());
        var big = await log.AppendAsync(new byte[9 * 1024 * 1024]);
        using var read = await log.ReadAsync(big);
        Assert.Equal(9 * 1024 * 1024, read.Length);
    }

    private static byte[] Record(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
