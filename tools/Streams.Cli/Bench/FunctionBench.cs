using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Functions;

namespace Streams.Cli.Bench;

/// <summary>
/// <c>bench --function</c>: one function-host instance in this process, with a handler that only counts, over a reader
/// group of the written (sealed) stream: events handled per second from the first event to the last, and batches
/// committed per second.
/// </summary>
internal static class FunctionBench
{
    public static async Task<FunctionBenchResult> RunAsync(string controller, string scope, string stream, long expected, int concurrency, int batchSize, Func<string, Task<long?>>? recordWrites, CancellationToken ct)
    {
        var counter = new Counter(expected);
        var group = "fbench-" + Guid.NewGuid().ToString("N")[..8];
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(counter);
        builder.AddStreamsFunction<CountingFunction, byte[]>(Serializers.Bytes, o =>
        {
            o.Controller = controller;
            o.Scope = scope;
            o.Group = group;
            o.Streams = [$"{scope}/{stream}"];
            o.Concurrency = concurrency;
            o.BatchSize = batchSize;
            o.HttpAddress = "127.0.0.1";
            o.HttpPort = FreePort();
        });
        await using var app = builder.Build();
        await app.StartAsync(ct);
        var state = app.Services.GetRequiredService<FunctionState>();
        var writesBefore = recordWrites is null ? null : await recordWrites(group);
        while (!state.Ended && state.Failure is null)
        {
            await Task.Delay(50, ct);
        }

        var writesAfter = recordWrites is null ? null : await recordWrites(group);
        await app.StopAsync(ct);
        if (state.Failure is { } failure)
        {
            throw new InvalidOperationException("The function failed: " + failure);
        }

        var seconds = counter.Seconds;
        await using (var client = StreamsClient.Create(controller))
        {
            await client.DeleteReaderGroupAsync(scope, group, ct);
        }

        return new FunctionBenchResult(concurrency, batchSize, counter.Events, Math.Round(seconds, 2), seconds > 0 ? Math.Round(counter.Events / seconds) : 0,
            counter.Batches, seconds > 0 ? Math.Round(counter.Batches / seconds) : 0, writesAfter - writesBefore);
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Counts events and batches, and times the first and last.</summary>
    internal sealed class Counter(long expected)
    {
        private long _events;
        private long _batches;
        private long _first;
        private long _last;

        public long Events => Interlocked.Read(ref _events);

        public long Batches => Interlocked.Read(ref _batches);

        public double Seconds => _first == 0 ? 0 : (double)(Interlocked.Read(ref _last) - _first) / Stopwatch.Frequency;

        public long Expected => expected;

        public void Add(int events)
        {
            var now = Stopwatch.GetTimestamp();
            Interlocked.CompareExchange(ref _first, now, 0);
            Interlocked.Add(ref _events, events);
            Interlocked.Increment(ref _batches);
            Interlocked.Exchange(ref _last, now);
        }
    }

    /// <summary>The trivial handler: counts.</summary>
    internal sealed class CountingFunction(Counter counter) : IStreamFunction<byte[]>
    {
        public Task HandleAsync(FunctionBatch<byte[]> batch, CancellationToken cancellationToken)
        {
            counter.Add(batch.Events.Count);
            return Task.CompletedTask;
        }
    }
}

/// <summary>
/// One function instance over the bench stream: events handled (and batches committed) per second from its first
/// event to its last, and the group record writes meanwhile (when the controller's metrics could be read).
/// </summary>
internal sealed record FunctionBenchResult(int Concurrency, int BatchSize, long Events, double Seconds, double EventsPerSecond, long Batches, double BatchesPerSecond, long? GroupRecordWrites);
