using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Client.Tests.Fakes;
using Streams.Contracts.Controller;

namespace Streams.Client.Tests.ReaderGroups;

/// <summary>What the group reader tests share: segments of framed events in the fake store, and views of what the reader sent.</summary>
public abstract class GroupReaderTestBase : FakeClusterTest
{
    /// <summary>The owner epoch of the first assignments.</summary>
    protected const long Epoch = 7;

    protected static string[] Named(string prefix, int count) => [.. Enumerable.Range(0, count).Select(i => $"{prefix}{i}:{new string('x', 100)}")];

    /// <summary>The offset where each event starts, and the end of the last.</summary>
    protected static long[] Offsets(string[] values)
    {
        var offsets = new long[values.Length + 1];
        for (var i = 0; i < values.Length; i++)
        {
            offsets[i + 1] = offsets[i] + FakeEvents.Frame(values[i]).Length;
        }

        return offsets;
    }

    protected FakeSegment Segment(int number, string[] values, bool seal)
    {
        var segment = Cluster.AddSegment(0, number, number * 0.1, (number + 1) * 0.1);
        segment.Write(FakeEvents.Frames(values));
        if (seal)
        {
            segment.Seal();
        }

        return segment;
    }

    protected List<ReaderMessage> Sent(ReaderMessage.KindOneofCase kind) => [.. Cluster.Groups.Received.Where(m => m.KindCase == kind)];

    protected static SegmentPosition PositionOf(ReaderMessage m) => m.KindCase switch
    {
        ReaderMessage.KindOneofCase.Commit => m.Commit.Position,
        ReaderMessage.KindOneofCase.Release => m.Release.Position,
        ReaderMessage.KindOneofCase.Completed => m.Completed.Position,
        _ => throw new ArgumentException($"{m.KindCase} has no position."),
    };

    /// <summary>Waits until the reader made <paramref name="more"/> more exchanges: what was queued before has been handled.</summary>
    protected async Task ExchangesAsync(int more)
    {
        var target = Cluster.Groups.Exchanges.Count + more;
        await WaitUntilAsync(() => Cluster.Groups.Exchanges.Count >= target, $"{more} more exchanges");
    }

    protected static async Task<EventRead<string>> NextAsync(IAsyncEnumerator<EventRead<string>> events)
    {
        Assert.True(await events.MoveNextAsync().AsTask().WaitAsync(Patience), "The enumeration ended early.");
        return events.Current;
    }

    protected GroupReader<string> Reader(GroupReaderOptions? options = null) => Client.CreateReader("test", "g", "r1", Serializers.Utf8, options ?? new GroupReaderOptions { ReadSize = 1024, TailWait = TimeSpan.FromMilliseconds(200) });
}
