using System.Buffers;
using Streams.SegmentStore.Reading;

namespace Streams.SegmentStore.Tests.Reading;

public sealed class FrameCacheTests
{
    private sealed class TrackedBuffer(int length) : IMemoryOwner<byte>
    {
        public bool Disposed { get; private set; }

        public Memory<byte> Memory { get; } = new byte[length];

        public void Dispose() => Disposed = true;
    }

    private static FrameKey Key(long entry) => new(0, new LogAddress(0, entry));

    [Fact]
    public void Evicts_least_recently_used_frames_beyond_capacity()
    {
        var cache = new FrameCache(300);
        var buffers = Enumerable.Range(0, 4).Select(_ => new TrackedBuffer(100)).ToArray();
        cache.Add(Key(0), buffers[0], 100);
        cache.Add(Key(1), buffers[1], 100);
        cache.Add(Key(2), buffers[2], 100);
        cache.TryAcquire(Key(0))!.Release(); // touch 0: 1 is now the oldest
        cache.Add(Key(3), buffers[3], 100);

        Assert.Null(cache.TryAcquire(Key(1)));
        Assert.True(buffers[1].Disposed);
        Assert.False(buffers[0].Disposed);
        Assert.Equal(300, cache.Size);
    }

    [Fact]
    public void A_frame_being_read_outlives_its_eviction()
    {
        var cache = new FrameCache(100);
        var first = new TrackedBuffer(100);
        cache.Add(Key(0), first, 100);
        var lease = cache.TryAcquire(Key(0))!;
        cache.Add(Key(1), new TrackedBuffer(100), 100);

        Assert.Null(cache.TryAcquire(Key(0)));
        Assert.False(first.Disposed);
        lease.Release();
        Assert.True(first.Disposed);
    }

    [Fact]
    public void Adding_a_cached_frame_again_keeps_one_copy()
    {
        var cache = new FrameCache(1000);
        var original = new TrackedBuffer(10);
        var duplicate = new TrackedBuffer(10);
        cache.Add(Key(0), original, 10);
        var frame = cache.AddAndAcquire(Key(0), duplicate, 10);
        Assert.True(duplicate.Disposed);
        Assert.Equal(10, cache.Size);
        frame.Release();
        Assert.False(original.Disposed);
    }

    [Fact]
    public void Truncation_drops_only_that_containers_older_frames()
    {
        var cache = new FrameCache(1000);
        var buffers = Enumerable.Range(0, 4).Select(_ => new TrackedBuffer(10)).ToArray();
        cache.Add(new FrameKey(0, new LogAddress(0, 1)), buffers[0], 10);
        cache.Add(new FrameKey(0, new LogAddress(0, 5)), buffers[1], 10);
        cache.Add(new FrameKey(1, new LogAddress(0, 1)), buffers[2], 10);
        cache.Add(new FrameKey(0, new LogAddress(1, 0)), buffers[3], 10);

        cache.RemoveBefore(0, new LogAddress(0, 5));
        Assert.Equal([true, false, false, false], buffers.Select(b => b.Disposed));
        cache.RemoveContainer(0);
        Assert.Equal([true, true, false, true], buffers.Select(b => b.Disposed));
        Assert.Equal(10, cache.Size);
    }
}
