using Streams.Controller.Streams;
using Streams.Coordination.Metadata;

namespace Streams.Controller.Tests.Streams;

/// <summary>The stream records the store hands out: parsed once per change, never stale.</summary>
public sealed class StreamMetadataStoreTests : IAsyncDisposable
{
    private readonly TempMetadataStore _temp = new("metadata-store");

    private FileMetadataStore _metadata => _temp.Store;

    public ValueTask DisposeAsync() => _temp.DisposeAsync();

    [Fact]
    public async Task An_unchanged_record_is_parsed_once_and_a_changed_or_recreated_one_again()
    {
        var store = new StreamMetadataStore(_metadata);
        var first = Record(2);
        Assert.True(await store.CreateStreamAsync(first, default));

        var (a, version) = (await store.GetStreamAsync("shop", "orders", default))!.Value;
        var (b, _) = (await store.GetStreamAsync("shop", "orders", default))!.Value;
        Assert.Same(a, b);
        Assert.Equal(2, a.ActiveSegments.Count);

        // Updated through another store (another controller): the bytes differ, so the record is read anew.
        Assert.NotNull(await new StreamMetadataStore(_metadata).UpdateStreamAsync(Record(3), version, default));
        var (c, _) = (await store.GetStreamAsync("shop", "orders", default))!.Value;
        Assert.Equal(3, c.ActiveSegments.Count);

        // Deleted and created again with other contents, whatever version the new node starts at.
        var (current, currentVersion) = (await store.GetStreamAsync("shop", "orders", default))!.Value;
        Assert.True(await store.DeleteStreamAsync("shop", "orders", currentVersion, default));
        Assert.Null(await store.GetStreamAsync("shop", "orders", default));
        Assert.True(await new StreamMetadataStore(_metadata).CreateStreamAsync(Record(5), default));
        var (d, _) = (await store.GetStreamAsync("shop", "orders", default))!.Value;
        Assert.Equal(5, d.ActiveSegments.Count);
        Assert.NotSame(current, d);
    }

    private static StreamRecord Record(int segments) => new(
        "shop", "orders", segments, StreamRecordState.Active, 0,
        [.. Enumerable.Range(0, segments).Select(i => new SegmentRecord(i, 0, i / (double)segments, (i + 1) / (double)segments))], 0);
}
