using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A writer with a stable id restarted as a new process (`streams write --writer-id`), against a real standalone: the
/// new writer's events are never taken for re-sends of its predecessor's (they are all stored), whether the first
/// writer exited cleanly or was SIGKILLed mid-stream, and whether the second writes fewer or more events than the
/// first. With the application's own sequences (`--sequence-from`), re-sending the same events after a restart stores
/// each exactly once.
/// </summary>
public sealed class WriterRestartTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const int Events = 1_952;

    [Theory]
    [InlineData(Events, Events)]
    [InlineData(Events, 100)]
    [InlineData(100, Events)]
    public async Task A_restarted_writer_with_the_same_id_has_every_event_stored(int first, int second)
    {
        var stream = await CreateStreamAsync();
        var writerId = Guid.NewGuid().ToString();
        await WriteAsync(stream, writerId, Lines("a", first));
        await WriteAsync(stream, writerId, Lines("b", second));

        var read = await ReadAsync(stream);
        Assert.Equal(first + second, read.Count);
        Assert.Equal(Lines("a", first).Concat(Lines("b", second)).Select(ValueOf).Order(), read.Order());
    }

    [Fact]
    public async Task A_writer_killed_mid_stream_then_restarted_with_the_same_id_loses_nothing_acknowledged()
    {
        var stream = await CreateStreamAsync();
        var writerId = Guid.NewGuid().ToString();
        var acked = await WriteUntilKilledAsync(stream, writerId, "a", sequenceFrom: null);
        // Fed slowly, so its events travel in small blocks, as the killed writer's did.
        await WriteSlowlyAsync(stream, writerId, Lines("b", Events));

        var read = await ReadAsync(stream);
        Assert.Equal(read.Count, read.Distinct().Count());
        Assert.Subset(read.ToHashSet(), acked.ToHashSet());
        Assert.Subset(read.ToHashSet(), Lines("b", Events).Select(ValueOf).ToHashSet());
        Assert.All(read, e => Assert.True(e.StartsWith("a-", StringComparison.Ordinal) || e.StartsWith("b-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Re_sending_the_same_numbered_events_after_a_kill_stores_each_exactly_once()
    {
        var stream = await CreateStreamAsync();
        var writerId = Guid.NewGuid().ToString();
        var acked = await WriteUntilKilledAsync(stream, writerId, "a", sequenceFrom: 1_000);
        // The restarted application does not know what got in, so it sends everything again, with the same numbers.
        await WriteAsync(stream, writerId, Lines("a", Events), "--sequence-from", "1000");

        var read = await ReadAsync(stream);
        Assert.Equal(Lines("a", Events).Select(ValueOf).Order(), read.Order());
        Assert.Subset(read.ToHashSet(), acked.ToHashSet());
    }

    [Fact]
    public async Task Sequences_that_go_backwards_are_refused_with_a_clear_error()
    {
        await using var client = fixture.CreateClient();
        var stream = await CreateStreamAsync();
        await using var writer = await client.CreateWriterAsync("restart", stream, Serializers.Utf8);
        await writer.WriteEventAsync("k", "ten", 10, TestContext.Current.CancellationToken);
        var backwards = await Assert.ThrowsAsync<ArgumentException>(() => writer.WriteEventAsync("k", "five", 5, TestContext.Current.CancellationToken));
        Assert.Contains("must increase", backwards.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => writer.WriteEventAsync("k", "unnumbered", TestContext.Current.CancellationToken));
    }

    /// <summary>"key:value" lines; the value names the writer run and the event.</summary>
    private static IEnumerable<string> Lines(string run, int count) =>
        Enumerable.Range(0, count).Select(i => $"k{i % 8}:{run}-{i.ToString(CultureInfo.InvariantCulture)}");

    private static string ValueOf(string line) => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..];

    private async Task<string> CreateStreamAsync()
    {
        var name = "s" + Guid.NewGuid().ToString("N")[..8];
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("restart");
        await client.Streams.CreateStreamAsync("restart", name, StreamConfig.Fixed(3));
        return name;
    }

    private async Task WriteAsync(string stream, string writerId, IEnumerable<string> lines, params string[] extra)
    {
        var result = await StreamsProcess.RunAsync(
            ["write", "restart/" + stream, "--controller", fixture.Server.ControllerUri, "--key-separator", ":", "--writer-id", writerId, .. extra],
            string.Join('\n', lines) + "\n", TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, $"streams write failed ({result.ExitCode}): {result.Stdout} {result.Stderr}");
    }

    /// <summary>A writer process fed a few lines at a time (each chunk once the previous one is acknowledged), to its end.</summary>
    private async Task WriteSlowlyAsync(string stream, string writerId, IEnumerable<string> lines)
    {
        await using var writer = StreamsProcess.StartClient(
            ["write", "restart/" + stream, "--controller", fixture.Server.ControllerUri, "--key-separator", ":", "--writer-id", writerId, "--report-acks"]);
        var sent = 0;
        foreach (var chunk in lines.Chunk(50))
        {
            foreach (var line in chunk)
            {
                await writer.Input.WriteLineAsync(line);
            }

            await writer.Input.FlushAsync();
            sent += chunk.Length;
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (Acked(writer).Count < sent)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{sent - Acked(writer).Count} of {sent} events unacknowledged after 20 s:\n" + writer.Output);
                await Task.Delay(5);
            }
        }

        writer.Input.Close();
        Assert.True(await writer.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, "streams write failed:\n" + writer.Output);
    }

    /// <summary>Feeds a writer process events until some are acknowledged and more are in flight, then SIGKILLs it; returns the acknowledged values.</summary>
    private async Task<List<string>> WriteUntilKilledAsync(string stream, string writerId, string run, long? sequenceFrom)
    {
        string[] numbering = sequenceFrom is { } from ? ["--sequence-from", from.ToString(CultureInfo.InvariantCulture)] : [];
        var lines = Lines(run, Events).ToList();
        await using var writer = StreamsProcess.StartClient(
            ["write", "restart/" + stream, "--controller", fixture.Server.ControllerUri, "--key-separator", ":", "--writer-id", writerId, "--report-acks", .. numbering]);
        var sent = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        // Until 300 are acknowledged (however slowly the process starts), then kill it with more in flight.
        while (Acked(writer).Count < 300)
        {
            Assert.True(DateTime.UtcNow < deadline, "The writer acknowledged too little in 30 s:\n" + writer.Output);
            for (var i = 0; i < 20 && sent < Events - 100; i++)
            {
                await writer.Input.WriteLineAsync(lines[sent++]);
            }

            await writer.Input.FlushAsync();
            await Task.Delay(20);
        }

        // Events still in flight when it dies: the next writer must neither lose its own nor be confused by these.
        for (var i = 0; i < 100; i++)
        {
            await writer.Input.WriteLineAsync(lines[sent++]);
        }

        await writer.Input.FlushAsync();
        writer.Kill();
        var acked = Acked(writer).Select(i => ValueOf(lines[i])).ToList();
        Assert.NotEmpty(acked);
        return acked;
    }

    private static List<int> Acked(StreamsProcess writer) =>
        [.. writer.Output.Split('\n').Where(l => l.StartsWith("acked ", StringComparison.Ordinal)).Select(l => int.Parse(l[6..].Trim(), CultureInfo.InvariantCulture))];

    private async Task<List<string>> ReadAsync(string stream)
    {
        await using var client = fixture.CreateClient();
        var events = new List<string>();
        await foreach (var e in client.CreateReader("restart", stream, Serializers.Utf8).ReadAllAsync(TestContext.Current.CancellationToken))
        {
            events.Add(e.Value);
        }

        return events;
    }
}
