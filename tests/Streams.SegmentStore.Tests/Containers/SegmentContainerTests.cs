using Streams.SegmentStore.Containers;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>The container as its parts wired together (SegmentContainer.cs): appends go through the metadata and the operation log and come back through the read index.</summary>
public sealed class SegmentContainerTests
{
    [Fact]
    public async Task Appends_are_acknowledged_with_lengths_and_read_back_in_order()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog());
        var first = await container.AppendAsync(Segment, WriterA, 1, 2, null, Events("a", "bb"));
        var second = await container.AppendAsync(Segment, WriterA, 2, 1, null, Events("ccc"));
        Assert.Equal((OutcomeStatus.Success, 11L, 1L), (first.Status, first.SegmentLength, first.EventNumber));
        Assert.Equal((OutcomeStatus.Success, 18L, 2L), (second.Status, second.SegmentLength, second.EventNumber));
        Assert.Equal(["a", "bb", "ccc"], await ReadAllEventsAsync(container));
        Assert.Equal(18, container.GetInfo(Segment)!.Length);
    }

    [Fact]
    public async Task Concurrent_writers_keep_their_own_order()
    {
        await using var container = await StartWithSegmentAsync(new InMemoryDurableDataLog { AppendDelay = TimeSpan.FromMilliseconds(1) });
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var id = Guid.NewGuid();
            for (var i = 0; i < 100; i++)
            {
                Assert.True((await container.AppendAsync(Segment, id, i, 1, null, Events($"{w}:{i}"))).IsSuccess);
            }
        }));
        await Task.WhenAll(writers);
        var events = await ReadAllEventsAsync(container);
        Assert.Equal(800, events.Count);
        foreach (var group in events.GroupBy(e => e.Split(':')[0]))
        {
            Assert.Equal(Enumerable.Range(0, 100), group.Select(e => int.Parse(e.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)));
        }
    }
}
