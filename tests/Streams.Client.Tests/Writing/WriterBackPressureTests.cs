using System.Globalization;
using Streams.Client.Serialization;
using Streams.Client.Tests.Fakes;
using Streams.Client.Writing;

namespace Streams.Client.Tests.Writing;

/// <summary>
/// A writer whose buffer is full (MaxBufferedBytes) makes writes wait for space. The writes that waited keep their
/// place: a key's events are stored in the order written, and cancelling a wait cancels only that write.
/// </summary>
public sealed class WriterBackPressureTests : FakeClusterTest
{
    private const int Big = 6 * 1024 * 1024;

    private static EventWriterOptions Options() => new()
    {
        StoreRoutingKeys = true,
        MaxBufferedBytes = 16L * 1024 * 1024,
        Linger = TimeSpan.FromMilliseconds(2),
    };

    private static int IndexOf(string value) => int.Parse(value.Split(':')[0], CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_write_that_waited_for_space_is_stored_before_the_writes_that_came_after_it()
    {
        var segment = Cluster.AddSegment(0, 0, 0, 1);
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, Options());
        segment.Hold();
        var padding = new string('x', Big);

        // Two events of 6 MiB fill most of the 16 MiB: the third waits for space, and so do the small ones behind it.
        var writes = Enumerable.Range(0, 3).Select(i => writer.WriteEventAsync("k", $"{i}:{padding}")).ToList();
        await WaitUntilAsync(() => segment.HeldCount >= 1, "the writer has a block in flight");
        Assert.False(writes[2].IsCompleted, "The third event did not wait for space.");

        // The store answers; meanwhile the application keeps writing the same key. Space comes free while it does, and
        // none of these may pass the event that waited.
        segment.Release();
        var index = 3;
        for (; index < 50_000 && !writes[2].IsCompleted; index++)
        {
            writes.Add(writer.WriteEventAsync("k", $"{index}:s"));
        }

        await Task.WhenAll(writes).WaitAsync(Patience);
        var stored = FakeEvents.Parse(segment.Data).Select(e => IndexOf(e.Value)).ToList();
        Assert.Equal(Enumerable.Range(0, index), stored);
        Assert.True(index > 3, "No write came after the one that waited.");
        Assert.Equal(0, writer.BufferedBytes);
    }

    [Fact]
    public async Task Cancelling_a_wait_for_space_cancels_that_write_only()
    {
        var segment = Cluster.AddSegment(0, 0, 0, 1);
        await using var writer = await Client.CreateWriterAsync("test", "s", Serializers.Utf8, Options());
        segment.Hold();
        var padding = new string('x', Big);
        var first = new[] { writer.WriteEventAsync("k", $"0:{padding}"), writer.WriteEventAsync("k", $"1:{padding}") };
        using var cancel = new CancellationTokenSource();
        var cancelled = writer.WriteEventAsync("k", $"2:{padding}", cancel.Token);
        var after = writer.WriteEventAsync("k", "3:s");
        await WaitUntilAsync(() => segment.HeldCount >= 1, "the writer has a block in flight");

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Patience));
        Assert.False(after.IsCompleted, "A write behind the cancelled one completed while the buffer was full.");

        segment.Release();
        await Task.WhenAll([.. first, after]).WaitAsync(Patience);
        await writer.FlushAsync();
        Assert.Equal([0, 1, 3], FakeEvents.Parse(segment.Data).Select(e => IndexOf(e.Value)));
        Assert.Equal(0, writer.BufferedBytes);
    }
}
