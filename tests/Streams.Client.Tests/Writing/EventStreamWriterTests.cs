using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Grpc.Core;
using Streams.Testing;

namespace Streams.Client.Tests.Writing;

public sealed class EventStreamWriterTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync();

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    private async Task<StreamsClient> ClientWithStreamAsync(string stream, int segments, DataTransport transport = DataTransport.Raw)
    {
        var client = _server.CreateClient(transport);
        await client.Streams.CreateScopeAsync("test");
        await client.Streams.CreateStreamAsync("test", stream, StreamConfig.Fixed(segments));
        return client;
    }

    private static async Task<List<EventRead<string>>> ReadAllAsync(StreamsClient client, string stream)
    {
        var events = new List<EventRead<string>>();
        await foreach (var e in client.CreateReader("test", stream, Serializers.Utf8).ReadAllAsync())
        {
            events.Add(e);
        }

        return events;
    }

    [Theory]
    [InlineData(DataTransport.Raw)]
    [InlineData(DataTransport.Grpc)]
    public async Task Events_with_the_same_key_are_read_in_the_order_written(DataTransport transport)
    {
        await using var client = await ClientWithStreamAsync("order-" + transport, 4, transport);
        await using (var writer = await client.CreateWriterAsync("test", "order-" + transport, Serializers.Utf8, new EventWriterOptions { StoreRoutingKeys = true }))
        {
            var writes = new List<Task>();
            for (var i = 0; i < 2000; i++)
            {
                writes.Add(writer.WriteEventAsync("key-" + (i % 10), $"{i % 10}:{i}"));
            }

            await Task.WhenAll(writes);
        }

        var events = await ReadAllAsync(client, "order-" + transport);
        Assert.Equal(2000, events.Count);
        foreach (var key in events.GroupBy(e => e.RoutingKey))
        {
            var sequence = key.Select(e => int.Parse(e.Value.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(sequence.Order(), sequence);
            Assert.Single(key.Select(e => e.Position.Segment).Distinct());
            Assert.All(key, e => Assert.Equal("key-" + e.Value.Split(':')[0], e.RoutingKey));
        }

        // Positions chain: each event's NextOffset is the next event's Offset in its segment.
        foreach (var segment in events.GroupBy(e => e.Position.Segment))
        {
            var positions = segment.Select(e => e.Position).ToList();
            Assert.Equal(0, positions[0].Offset);
            for (var i = 1; i < positions.Count; i++)
            {
                Assert.Equal(positions[i - 1].NextOffset, positions[i].Offset);
            }
        }
    }

    [Fact]
    public async Task Events_over_8_MiB_are_refused_and_the_writer_keeps_working()
    {
        await using var client = await ClientWithStreamAsync("big", 1);
        await using var writer = await client.CreateWriterAsync("test", "big", Serializers.Bytes);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => writer.WriteEventAsync(new byte[(8 * 1024 * 1024) + 1]));
        Assert.Contains("8 MiB", error.Message);

        await writer.WriteEventAsync(new byte[8 * 1024 * 1024]);
        await writer.WriteEventAsync([1, 2, 3]);
        var events = new List<EventRead<byte[]>>();
        await foreach (var e in client.CreateReader("test", "big", Serializers.Bytes).ReadAllAsync())
        {
            events.Add(e);
        }

        Assert.Equal([8 * 1024 * 1024, 3], events.Select(e => e.Value.Length));
    }

    [Fact]
    public async Task A_large_event_does_not_leave_the_writing_thread_with_a_large_buffer()
    {
        await using var client = await ClientWithStreamAsync("scratch", 1);
        await using var writer = await client.CreateWriterAsync("test", "scratch", Serializers.Bytes);

        // Serializing happens on the calling thread, before the first await: look at that thread's buffer right after.
        var large = writer.WriteEventAsync(new byte[4 * 1024 * 1024]);
        var afterLarge = EventStreamWriter<byte[]>.ScratchCapacity;
        await large;
        var small = writer.WriteEventAsync(new byte[100]);
        var afterSmall = EventStreamWriter<byte[]>.ScratchCapacity;
        await small;

        Assert.True(afterLarge <= 64 * 1024, $"The thread keeps a {afterLarge}-byte buffer after a 4 MiB event.");
        Assert.InRange(afterSmall, 1, 64 * 1024);
    }

    [Fact]
    public async Task Writing_to_a_sealed_stream_fails_clearly()
    {
        await using var client = await ClientWithStreamAsync("sealed", 2);
        await using var writer = await client.CreateWriterAsync("test", "sealed", Serializers.Utf8);
        await writer.WriteEventAsync("k", "before");
        await client.Streams.SealStreamAsync("test", "sealed");
        await Assert.ThrowsAsync<StreamSealedException>(() => writer.WriteEventAsync("k", "after"));
        await Assert.ThrowsAsync<StreamSealedException>(() => client.CreateWriterAsync("test", "sealed", Serializers.Utf8));
    }

    [Fact]
    public async Task Writers_for_missing_streams_are_refused()
    {
        await using var client = _server.CreateClient();
        var error = await Assert.ThrowsAsync<StreamsException>(() => client.CreateWriterAsync("test", "missing", Serializers.Utf8));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task A_server_restart_loses_no_acknowledged_event_and_duplicates_none()
    {
        await using var client = await ClientWithStreamAsync("restart", 2);
        await using var writer = await client.CreateWriterAsync("test", "restart", Serializers.Utf8);
        var acknowledged = new List<Task>();
        for (var i = 0; i < 500; i++)
        {
            acknowledged.Add(writer.WriteEventAsync("k" + (i % 4), "before-" + i));
        }

        await Task.WhenAll(acknowledged);
        var restart = _server.RestartAsync();
        var during = new List<Task>();
        for (var i = 0; i < 500; i++)
        {
            during.Add(writer.WriteEventAsync("k" + (i % 4), "during-" + i));
        }

        await restart;
        await Task.WhenAll(during).WaitAsync(TimeSpan.FromSeconds(60));
        await writer.FlushAsync();

        var values = (await ReadAllAsync(client, "restart")).Select(e => e.Value).ToList();
        Assert.Equal(1000, values.Count);
        Assert.Equal(1000, values.Distinct().Count());
    }

    [Fact]
    public async Task A_new_writer_with_the_same_id_continues_after_its_predecessor()
    {
        await using var client = await ClientWithStreamAsync("same-id", 1);
        var options = new EventWriterOptions { WriterId = Guid.NewGuid() };
        for (var run = 0; run < 3; run++)
        {
            await using var writer = await client.CreateWriterAsync("test", "same-id", Serializers.Utf8, options);
            await Task.WhenAll(Enumerable.Range(0, 10 - (run * 4)).Select(i => writer.WriteEventAsync("k", $"{run}-{i}")));
        }

        var values = (await ReadAllAsync(client, "same-id")).Select(e => e.Value).ToList();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"0-{i}").Concat(Enumerable.Range(0, 6).Select(i => $"1-{i}")).Concat(Enumerable.Range(0, 2).Select(i => $"2-{i}")), values);
    }

    [Fact]
    public async Task Events_numbered_by_the_application_that_the_segment_has_are_not_stored_again()
    {
        await using var client = await ClientWithStreamAsync("sequences", 1);
        var options = new EventWriterOptions { WriterId = Guid.NewGuid() };
        await using (var first = await client.CreateWriterAsync("test", "sequences", Serializers.Utf8, options))
        {
            await Task.WhenAll(Enumerable.Range(0, 10).Select(i => first.WriteEventAsync("k", "e" + i, i)));
        }

        await using (var second = await client.CreateWriterAsync("test", "sequences", Serializers.Utf8, options))
        {
            // Before the first setup answers: dropped when it does. After it: known at once.
            await second.WriteEventAsync("k", "again-3", 3);
            await second.WriteEventAsync("k", "again-7", 7);
            await Task.WhenAll(Enumerable.Range(8, 7).Select(i => second.WriteEventAsync("k", "e" + i, i)));
        }

        // Written before the third writer's first setup answers, in one block: 12..14 are cut from it, 15..19 kept.
        await using (var third = await client.CreateWriterAsync("test", "sequences", Serializers.Utf8, options))
        {
            await Task.WhenAll(Enumerable.Range(12, 8).Select(i => third.WriteEventAsync("k", "e" + i, i)));
        }

        var values = (await ReadAllAsync(client, "sequences")).Select(e => e.Value).ToList();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => "e" + i), values);
    }
}
