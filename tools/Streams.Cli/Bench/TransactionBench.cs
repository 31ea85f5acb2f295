using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Cli.Bench;

/// <summary>
/// <c>bench --transaction-size N</c>: after the write run, <c>--writers</c> concurrent loops of begin, N events of
/// <c>--size</c> bytes over <c>--keys</c> keys, commit, for <c>--duration</c> seconds on a stream of its own: events
/// committed per second, and the latency of the commit call (flush, decision and every merge) and of the whole
/// transaction, in milliseconds.
/// </summary>
internal static class TransactionBench
{
    public static async Task<TransactionBenchResult> RunAsync(StreamsClient client, BenchSettings settings, int eventsPerTransaction, CancellationToken ct)
    {
        var stream = "txn-" + Guid.NewGuid().ToString("N")[..8];
        await client.Streams.CreateStreamAsync("bench", stream, StreamConfig.Fixed(settings.Segments), ct);
        var commits = new LatencyRecording(settings.Writers);
        var whole = new LatencyRecording(settings.Writers);
        var payload = new byte[settings.EventSize];
        long transactions = 0, failed = 0;
        var keys = Enumerable.Range(0, settings.Keys).Select(k => "key-" + k.ToString(CultureInfo.InvariantCulture)).ToArray();
        await using var writer = await client.CreateWriterAsync("bench", stream, Serializers.Bytes, new EventWriterOptions(), ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var warmupEnds = Stopwatch.GetTimestamp() + (long)(settings.Warmup.TotalSeconds * Stopwatch.Frequency);
        var started = 0L;
        stop.CancelAfter(settings.Warmup + settings.Duration);
        var loops = Enumerable.Range(0, settings.Writers).Select(w => Task.Run(async () =>
        {
            var key = w;
            while (!stop.IsCancellationRequested)
            {
                var begin = Stopwatch.GetTimestamp();
                try
                {
                    await using var txn = await writer.BeginTransactionAsync(null, ct);
                    var writes = new Task[eventsPerTransaction];
                    for (var i = 0; i < eventsPerTransaction; i++)
                    {
                        writes[i] = txn.WriteEventAsync(keys[key++ % keys.Length], payload, ct);
                    }

                    await Task.WhenAll(writes);
                    var commit = Stopwatch.GetTimestamp();
                    await txn.CommitAsync(ct);
                    var end = Stopwatch.GetTimestamp();
                    if (begin >= warmupEnds)
                    {
                        Interlocked.CompareExchange(ref started, begin, 0);
                        commits.Record(w, commit, end);
                        whole.Record(w, begin, end);
                        Interlocked.Increment(ref transactions);
                    }
                }
                catch (StreamsException) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref failed);
                    await Task.Delay(50, CancellationToken.None); // e.g. RESOURCE_EXHAUSTED: let the backlog merge
                }
            }
        }, CancellationToken.None)).ToList();
        await Task.WhenAll(loops);
        var seconds = started == 0 ? 0 : Stopwatch.GetElapsedTime(started).TotalSeconds;
        await client.Streams.SealStreamAsync("bench", stream, ct);
        await client.Streams.DeleteStreamAsync("bench", stream, ct);
        var events = transactions * eventsPerTransaction;
        return new TransactionBenchResult(eventsPerTransaction, settings.Writers, transactions, failed, Math.Round(seconds, 2),
            seconds > 0 ? Math.Round(transactions / seconds) : 0, seconds > 0 ? Math.Round(events / seconds) : 0,
            LatencySummary.From(commits.Collect()), LatencySummary.From(whole.Collect()));
    }
}

/// <summary>What <see cref="TransactionBench"/> measured; latencies in milliseconds.</summary>
internal sealed record TransactionBenchResult(
    int EventsPerTransaction, int Concurrent, long Transactions, long Failed, double Seconds, double TransactionsPerSecond, double EventsPerSecond,
    LatencySummary CommitMs, LatencySummary TransactionMs);
