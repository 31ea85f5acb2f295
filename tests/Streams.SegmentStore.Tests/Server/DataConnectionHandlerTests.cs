using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Common.Server.Framing;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Server;
using Streams.Testing;

namespace Streams.SegmentStore.Tests.Server;

/// <summary>Not run beside other tests: it sums unsent reply bytes through the segment store's (process-wide) meter.</summary>
[CollectionDefinition(nameof(DataConnectionHandlerCollection), DisableParallelization = true)]
public sealed class DataConnectionHandlerCollection;

/// <summary>
/// The raw data carrier: a real standalone server in this process with a hand-written reader that never takes its
/// replies, and the per-connection session against a read that outlives its connection.
/// </summary>
[Collection(nameof(DataConnectionHandlerCollection))]
public sealed class DataConnectionHandlerTests
{
    private const string Scope = "handler";
    private const int Budget = 2 * 1024 * 1024;
    private const int EventSize = 16 * 1024;

    /// <summary>Small replies (hello, keep-alives) are counted as they come and may ride over the budget.</summary>
    private const int Slack = 64 * 1024;

    /// <summary>
    /// An answer read again once it fits may pin more cached frames than first counted (the cache moved meanwhile) and
    /// is settled after the fact: a connection holds at most its budget plus one answer (1 MiB reads over 1 MiB frames).
    /// </summary>
    private const int OneAnswer = 2 * 1024 * 1024;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_reader_that_never_takes_its_replies_holds_at_most_its_budget_while_another_client_reads_and_writes()
    {
        using var unsent = new UnsentBytes();
        await using var server = await TestServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["SegmentStore:ReplyBudgetPerConnection"] = $"{Budget}B",
        });
        await using var client = server.CreateClient();
        await client.Streams.CreateScopeAsync(Scope, Token);
        await client.Streams.CreateStreamAsync(Scope, "stuck", StreamConfig.Fixed(1), Token);
        const int events = 2048; // 32 MiB
        var payload = new byte[EventSize];
        await using (var writer = await client.CreateWriterAsync(Scope, "stuck", Serializers.Bytes, cancellationToken: Token))
        {
            await Task.WhenAll(Enumerable.Range(0, events).Select(_ => writer.WriteEventAsync(payload, Token)));
        }

        // The stuck reader: a tiny receive buffer, 64 reads of 1 MiB across the segment, and never a byte read back.
        using var stuck = await RawProtocolClient.ConnectAsync(server.DataPort, receiveBufferSize: 4096, Token);
        await stuck.SendHelloAsync("stuck", Token);
        for (var i = 0; i < 64; i++)
        {
            await stuck.SendAsync(new DataRequest
            {
                Read = new ReadSegmentRequest { RequestId = i + 1, Segment = $"{Scope}/stuck/0.#epoch.0", Offset = i % 32 * (1L << 20), MaxBytes = 1 << 20 },
            }, Token);
        }

        // The server fills the socket's buffers, then its budget, then stops serving that connection.
        await WaitUntilAsync(() => unsent.Now >= Budget / 2, TimeSpan.FromSeconds(20));
        await Task.Delay(500, Token);
        var stuckMax = unsent.Max;
        Assert.True(stuckMax <= Budget + OneAnswer + Slack, $"The stuck reader's replies held up to {stuckMax} bytes; the budget is {Budget}.");

        // Meanwhile another client reads the whole segment and writes more, at full speed.
        var clock = Stopwatch.StartNew();
        long read = 0;
        await foreach (var e in client.CreateReader(Scope, "stuck", Serializers.Bytes).ReadAllAsync(Token))
        {
            read += e.Value.Length;
        }

        await using (var writer = await client.CreateWriterAsync(Scope, "stuck", Serializers.Bytes, cancellationToken: Token))
        {
            await Task.WhenAll(Enumerable.Range(0, 256).Select(_ => writer.WriteEventAsync(payload, Token)));
        }

        var elapsed = clock.Elapsed;
        Assert.Equal((long)events * EventSize, read);
        Assert.True(elapsed < TimeSpan.FromSeconds(15), $"The other client took {elapsed} to read 32 MiB and write 4 MiB.");

        // A stuck connection holds its budget (a small reply may ride over it), never the 64 MiB it asked for; the
        // other client's connection had a budget of its own meanwhile.
        Assert.True(unsent.Max <= 2 * (Budget + OneAnswer + Slack), $"Unsent replies of both connections held up to {unsent.Max} bytes; each has a budget of {Budget} plus one answer.");
        Assert.InRange(unsent.Now, Budget / 2, Budget + OneAnswer + Slack);

        // Once the stuck reader goes away, everything it held is released.
        stuck.Dispose();
        await WaitUntilAsync(() => unsent.Now == 0, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_read_that_ends_after_its_connection_closed_the_session_releases_it_then_and_not_before()
    {
        var replies = new FramedReplyChannel(new Pipe().Writer);
        var session = new DataConnectionHandler.Session(new AppendSession(null!, _ => { }), maxReads: 2, replies);
        await session.BeginReadAsync(Token);

        // The connection's loop ends first: the read still running is told to stop, and nothing is released under it.
        session.Close();
        Assert.True(session.Ending.IsCancellationRequested);

        // Then the read ends and gives back its slot (this threw ObjectDisposedException when the loop released the
        // session's read slots at close).
        session.EndRead();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await session.BeginReadAsync(Token));
        await replies.CompleteAsync();
    }

    private static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout) =>
        Waiting.UntilAsync(condition, "the condition holds", timeout, TimeSpan.FromMilliseconds(50), Token);

    /// <summary>The segment store's unsent-reply gauge, as it moves: now and the highest it has been.</summary>
    private sealed class UnsentBytes : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _now;
        private long _max;

        public UnsentBytes()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == SegmentStoreMetrics.MeterName && instrument.Name == "streams.segmentstore.connection.unsent")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, change, _, _) =>
            {
                var now = Interlocked.Add(ref _now, change);
                for (var max = Volatile.Read(ref _max); now > max; max = Volatile.Read(ref _max))
                {
                    if (Interlocked.CompareExchange(ref _max, now, max) == max)
                    {
                        break;
                    }
                }
            });
            _listener.Start();
        }

        public long Now => Volatile.Read(ref _now);

        public long Max => Volatile.Read(ref _max);

        public void Dispose() => _listener.Dispose();
    }
}
