using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Client.Tests.Fakes;

namespace Streams.Client.Tests.Reading;

/// <summary>
/// A reader follows the stream's epochs: it starts a successor only once every predecessor is read to its end, skips
/// segments truncated away, and ends once the sealed stream is read. Runs against a fake controller and segment store.
/// </summary>
public sealed class EventStreamReaderEpochTests : FakeClusterTest
{
    private static IEnumerable<string> Named(string prefix, int count) => Enumerable.Range(0, count).Select(i => $"{prefix}{i}:{new string('x', 100)}");

    private async Task<List<string>> ReadAllAsync(EventReaderOptions? options = null)
    {
        var read = new List<string>();
        await foreach (var e in Client.CreateReader("test", "s", Serializers.Utf8, options ?? new EventReaderOptions { ReadSize = 1024 }).ReadAllAsync().WithCancellation(new CancellationTokenSource(Patience).Token))
        {
            read.Add(e.Value.Split(':')[0]);
        }

        return read;
    }

    [Fact]
    public async Task A_merged_successor_is_read_only_after_all_its_predecessors_are_read_to_their_end()
    {
        var quick = Cluster.AddSegment(0, 0, 0, 0.5);
        var slow = Cluster.AddSegment(0, 1, 0.5, 1);
        var merged = Cluster.AddSegment(1, 2, 0, 1, (0, 0), (0, 1));
        quick.Write(FakeEvents.Frames(Named("a", 5)));
        slow.Write(FakeEvents.Frames(Named("b", 40)));
        merged.Write(FakeEvents.Frames(Named("c", 5)));
        quick.Seal();
        slow.Seal();
        slow.ReadDelay = TimeSpan.FromMilliseconds(40);
        Cluster.Controller.CompleteScale(1, quick.Name, slow.Name);

        var read = await ReadAllAsync();

        Assert.Equal(50, read.Count);
        var firstSuccessorEvent = read.FindIndex(v => v.StartsWith('c'));
        var lastPredecessorEvent = read.FindLastIndex(v => !v.StartsWith('c'));
        Assert.True(firstSuccessorEvent > lastPredecessorEvent, $"The merged successor was read before its slow predecessor was done: {string.Join(",", read)}");
        Assert.Equal(Named("b", 40).Select(v => v.Split(':')[0]), read.Where(v => v.StartsWith('b')));
        Assert.Equal(["c0", "c1", "c2", "c3", "c4"], read.Skip(45));
    }

    [Fact]
    public async Task A_reader_retrying_at_a_store_that_stopped_answering_goes_to_the_new_owner_as_soon_as_the_segment_moves()
    {
        await using var other = await FakeCluster.StartAsync();
        var segment = Cluster.AddSegment(0, 0, 0, 1);
        segment.Write(FakeEvents.Frames(Named("a", 20)));
        segment.Seal();
        other.Store.Add(segment.Name).Write(segment.Data);
        other.Store[segment.Name].Seal();

        // The old owner failed one read and now answers none (a store on its way out); the segment then moves.
        segment.FailReads(1);
        segment.ReadDelay = TimeSpan.FromMinutes(5);
        var reading = ReadAllAsync();
        await Task.Delay(TimeSpan.FromSeconds(1));
        Cluster.Controller.Move(segment.Name, other.Controller.Uri);

        var read = await reading.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(Named("a", 20).Select(v => v.Split(':')[0]), read);
    }

    private static int Count(List<string> read)
    {
        lock (read)
        {
            return read.Count;
        }
    }

    [Fact]
    public async Task A_following_reader_moves_to_the_successors_and_ends_when_the_stream_is_sealed()
    {
        var first = Cluster.AddSegment(0, 0, 0, 1);
        var low = Cluster.AddSegment(1, 1, 0, 0.5, (0, 0));
        var high = Cluster.AddSegment(1, 2, 0.5, 1, (0, 0));
        first.Write(FakeEvents.Frames(Named("a", 3)));
        var read = new List<string>();
        var options = new EventReaderOptions { Follow = true, TailWait = TimeSpan.FromMilliseconds(200) };
        var reading = Task.Run(async () =>
        {
            await foreach (var e in Client.CreateReader("test", "s", Serializers.Utf8, options).ReadAllAsync(new CancellationTokenSource(Patience).Token))
            {
                lock (read)
                {
                    read.Add(e.Value.Split(':')[0]);
                }
            }
        });

        await WaitUntilAsync(() => Count(read) >= 3, "the first epoch's events are read");

        // The scale: the epoch becomes active only after the reader has asked a couple of times.
        low.Write(FakeEvents.Frames(Named("l", 3)));
        high.Write(FakeEvents.Frames(Named("h", 3)));
        Cluster.Controller.AnswerEmpty(first.Name, 2);
        first.Seal();
        Cluster.Controller.CompleteScale(1, first.Name);
        await WaitUntilAsync(() => Count(read) >= 9, "the successors' events are read");

        Assert.False(reading.IsCompleted, "The reader ended although the stream is not sealed.");
        Cluster.Controller.SealStream();
        low.Seal();
        high.Seal();
        await reading.WaitAsync(Patience);

        Assert.Equal(["a0", "a1", "a2"], read.Take(3));
        Assert.Equal(["l0", "l1", "l2"], read.Where(v => v.StartsWith('l')));
        Assert.Equal(["h0", "h1", "h2"], read.Where(v => v.StartsWith('h')));
        Assert.Equal(9, read.Count);
    }

    [Fact]
    public async Task A_segment_truncated_away_whole_is_skipped_to_its_successors()
    {
        var gone = Cluster.AddSegment(0, 0, 0, 1);
        var successor = Cluster.AddSegment(1, 1, 0, 1, (0, 0));
        successor.Write(FakeEvents.Frames(Named("s", 3)));
        Cluster.Controller.CompleteScale(1, gone.Name);
        Cluster.Store.Remove(gone.Name);

        Assert.Equal(["s0", "s1", "s2"], await ReadAllAsync());
    }

    [Fact]
    public async Task A_reader_resuming_in_a_successor_does_not_read_its_predecessors_again()
    {
        var old = Cluster.AddSegment(0, 0, 0, 1);
        var successor = Cluster.AddSegment(1, 1, 0, 1, (0, 0));
        old.Write(FakeEvents.Frames(Named("o", 3)));
        old.Seal();
        var frames = FakeEvents.Frames(Named("s", 4));
        successor.Write(frames);
        Cluster.Controller.CompleteScale(1, old.Name);

        var resumeAt = frames.Length / 2;
        var read = await ReadAllAsync(new EventReaderOptions { StartOffsets = new Dictionary<string, long> { [successor.Name] = resumeAt } });

        Assert.Equal(["s2", "s3"], read);
    }
}
