using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Testing;

namespace Streams.Client.Tests.Reading;

public sealed class EventStreamReaderTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private StreamsClient _client = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _client = _server.CreateClient();
        await _client.Streams.CreateScopeAsync("test");
    }

    public async ValueTask DisposeAsync()
    {
        await _client.DisposeAsync();
        await _server.DisposeAsync();
    }

    private async Task WriteAsync(string stream, IEnumerable<string> values)
    {
        await using var writer = await _client.CreateWriterAsync("test", stream, Serializers.Utf8);
        await Task.WhenAll(values.Select(v => writer.WriteEventAsync(v, v)));
    }

    [Fact]
    public async Task A_following_reader_sees_new_events_and_ends_when_the_stream_is_sealed()
    {
        await _client.Streams.CreateStreamAsync("test", "follow", StreamConfig.Fixed(2));
        await WriteAsync("follow", ["early"]);
        var reader = _client.CreateReader("test", "follow", Serializers.Utf8, new EventReaderOptions { Follow = true, TailWait = TimeSpan.FromMilliseconds(200) });
        var seen = new List<string>();
        var reading = Task.Run(async () =>
        {
            await foreach (var e in reader.ReadAllAsync())
            {
                lock (seen)
                {
                    seen.Add(e.Value);
                }
            }
        });

        await WriteAsync("follow", ["late-1", "late-2"]);
        await WaitUntilAsync(() => { lock (seen) { return seen.Count == 3; } });
        Assert.False(reading.IsCompleted);
        await _client.Streams.SealStreamAsync("test", "follow");
        await reading.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(["early", "late-1", "late-2"], seen.Order());
    }

    [Fact]
    public async Task A_sealed_stream_is_read_to_its_end_though_it_has_no_active_segments()
    {
        await _client.Streams.CreateStreamAsync("test", "done", StreamConfig.Fixed(3));
        string[] values = [.. Enumerable.Range(0, 30).Select(i => $"event-{i}")];
        await WriteAsync("done", values);
        await _client.Streams.SealStreamAsync("test", "done");

        foreach (var follow in new[] { false, true })
        {
            var seen = new List<string>();
            var reader = _client.CreateReader("test", "done", Serializers.Utf8, new EventReaderOptions { Follow = follow, TailWait = TimeSpan.FromMilliseconds(200) });
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await foreach (var e in reader.ReadAllAsync(timeout.Token))
            {
                seen.Add(e.Value);
            }

            Assert.Equal(values.Order(), seen.Order());
        }
    }

    [Fact]
    public async Task Readers_start_at_the_tail_or_at_given_offsets()
    {
        await _client.Streams.CreateStreamAsync("test", "positions", StreamConfig.Fixed(1));
        await WriteAsync("positions", ["a"]);
        var all = new List<EventRead<string>>();
        await foreach (var e in _client.CreateReader("test", "positions", Serializers.Utf8).ReadAllAsync())
        {
            all.Add(e);
        }

        var tail = new List<string>();
        await foreach (var e in _client.CreateReader("test", "positions", Serializers.Utf8, new EventReaderOptions { StartAtTail = true }).ReadAllAsync())
        {
            tail.Add(e.Value);
        }

        Assert.Empty(tail);
        await WriteAsync("positions", ["b"]);
        var resumed = new List<string>();
        var options = new EventReaderOptions { StartOffsets = new Dictionary<string, long> { [all[0].Position.Segment] = all[0].Position.NextOffset } };
        await foreach (var e in _client.CreateReader("test", "positions", Serializers.Utf8, options).ReadAllAsync())
        {
            resumed.Add(e.Value);
        }

        Assert.Equal(["b"], resumed);
    }

    [Fact]
    public async Task Events_larger_than_a_read_are_reassembled()
    {
        await _client.Streams.CreateStreamAsync("test", "spanning", StreamConfig.Fixed(1));
        var big = new string('x', 3 * 1024 * 1024);
        await WriteAsync("spanning", [big, "small"]);
        var values = new List<string>();
        await foreach (var e in _client.CreateReader("test", "spanning", Serializers.Utf8, new EventReaderOptions { ReadSize = 64 * 1024 }).ReadAllAsync())
        {
            values.Add(e.Value);
        }

        Assert.Equal([big.Length, 5], values.Select(v => v.Length).Order(Comparer<int>.Create((a, b) => b.CompareTo(a))));
    }

    private static Task WaitUntilAsync(Func<bool> condition) =>
        Waiting.UntilAsync(condition, "the condition holds", TimeSpan.FromSeconds(10));
}
