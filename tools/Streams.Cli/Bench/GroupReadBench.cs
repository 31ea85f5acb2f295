using System.Diagnostics;
using System.Globalization;
using Streams.Client;
using Streams.Client.ReaderGroups;
using Streams.Client.Reading;
using Streams.Client.Serialization;

namespace Streams.Cli.Bench;

/// <summary>
/// Reads a sealed stream with N readers two ways (<c>bench --group-readers N</c>): N whole-stream readers that split
/// the segments by hand (each starts every segment not its own at its end), and N readers of one reader group that the
/// controller assigns segments to. The hand split runs before and after the group, so a warmer cache favours neither.
/// </summary>
internal static class GroupReadBench
{
    public static async Task<GroupReadResult> RunAsync(StreamsClient client, string scope, string stream, int readers, Func<string, Task<long?>>? recordWrites, CancellationToken ct)
    {
        var description = await client.Streams.DescribeStreamAsync(scope, stream, ct);
        var tails = (await client.Streams.GetStreamCutAsync(scope, stream, ct)).Positions;
        var segments = description.ActiveSegments.OrderBy(s => s.Id).ToList();

        var before = await HandSplitAsync(client, scope, stream, readers, segments, tails, ct);
        var group = "bench-" + Guid.NewGuid().ToString("N")[..8];
        await client.CreateReaderGroupAsync(scope, group, ReaderGroupConfig.For($"{scope}/{stream}"), ct);
        var writesBefore = recordWrites is null ? null : await recordWrites(group);
        var grouped = await GroupAsync(client, scope, group, readers, ct);
        var writesAfter = recordWrites is null ? null : await recordWrites(group);
        await client.DeleteReaderGroupAsync(scope, group, ct);
        var after = await HandSplitAsync(client, scope, stream, readers, segments, tails, ct);

        double? writesPerSecond = writesBefore is { } b && writesAfter is { } a && grouped.Total > 0 ? Math.Round((a - b) / grouped.Total, 2) : null;
        return new GroupReadResult(readers, segments.Count, before, grouped.Run, after, Math.Round(grouped.FirstEvent, 2), Math.Round(grouped.EndAfterLast, 2), writesAfter - writesBefore, writesPerSecond);
    }

    private static async Task<ReadRun> HandSplitAsync(StreamsClient client, string scope, string stream, int readers, List<SegmentDescription> segments, IReadOnlyDictionary<long, long> tails, CancellationToken ct)
    {
        var timer = Stopwatch.StartNew();
        var counts = await Task.WhenAll(Enumerable.Range(0, readers).Select(async r =>
        {
            // Every segment not this reader's starts at its end: the reader reads only its share.
            var skip = segments.Where((_, i) => i % readers != r).ToDictionary(s => s.Name, s => tails.GetValueOrDefault(s.Id));
            long events = 0, bytes = 0;
            await foreach (var e in client.CreateReader(scope, stream, Serializers.Bytes, new EventReaderOptions { StartOffsets = skip }).ReadAllAsync(ct))
            {
                events++;
                bytes += e.Value.Length;
            }

            return (events, bytes);
        }));
        return ReadRun.Of(counts, timer.Elapsed.TotalSeconds);
    }

    private static async Task<(ReadRun Run, double FirstEvent, double EndAfterLast, double Total)> GroupAsync(StreamsClient client, string scope, string group, int readers, CancellationToken ct)
    {
        var timer = Stopwatch.StartNew();
        long firstTicks = long.MaxValue;
        long lastTicks = 0;
        var counts = await Task.WhenAll(Enumerable.Range(0, readers).Select(async r =>
        {
            await using var reader = client.CreateReader(scope, group, "bench-reader-" + r.ToString(CultureInfo.InvariantCulture), Serializers.Bytes);
            long events = 0, bytes = 0, lastEvent = 0;
            await foreach (var e in reader.ReadAsync(ct))
            {
                lastEvent = timer.ElapsedTicks;
                if (events++ == 0)
                {
                    InterlockedMin(ref firstTicks, lastEvent);
                }

                bytes += e.Value.Length;
            }

            InterlockedMax(ref lastTicks, lastEvent);
            return (events, bytes);
        }));
        var total = timer.Elapsed.TotalSeconds;
        var first = firstTicks == long.MaxValue ? 0 : (double)firstTicks / Stopwatch.Frequency;
        var last = (double)Interlocked.Read(ref lastTicks) / Stopwatch.Frequency;

        // The rate from the group's first event to its last: the join window before (1 s, so that readers starting
        // together share the segments) and the end of the group after (completions, EndOfGroup, leaving) are reported
        // apart.
        return (ReadRun.Of(counts, last - first), first, total - last, total);
    }

    private static void InterlockedMax(ref long target, long value) => Replace(ref target, value, (candidate, current) => candidate > current);

    private static void InterlockedMin(ref long target, long value) => Replace(ref target, value, (candidate, current) => candidate < current);

    /// <summary>Sets <paramref name="target"/> to <paramref name="value"/> while <paramref name="better"/> says it beats what is there.</summary>
    private static void Replace(ref long target, long value, Func<long, long, bool> better)
    {
        for (var current = Volatile.Read(ref target); better(value, current);)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}

/// <summary>One read of the stream by N readers: events and bytes in all, seconds, and the rates.</summary>
internal sealed record ReadRun(long Events, long Bytes, double Seconds, double EventsPerSecond, double MegabytesPerSecond)
{
    public static ReadRun Of((long Events, long Bytes)[] counts, double seconds)
    {
        var events = counts.Sum(c => c.Events);
        var bytes = counts.Sum(c => c.Bytes);
        return new ReadRun(events, bytes, Math.Round(seconds, 2), seconds > 0 ? Math.Round(events / seconds) : 0, seconds > 0 ? Math.Round(bytes / seconds / 1e6, 2) : 0);
    }
}

/// <summary>
/// <c>bench --group-readers N</c>: the hand split before and after, the group's read (from its first event to its last),
/// how long the group took to its first event (the join window) and from its last event to the readers' end (the end of
/// the group), and the group record writes during its read (and per second of it), when the controller's metrics
/// could be read.
/// </summary>
internal sealed record GroupReadResult(int Readers, int Segments, ReadRun HandSplitBefore, ReadRun Group, ReadRun HandSplitAfter, double GroupFirstEventSeconds, double GroupEndSeconds, long? GroupRecordWrites, double? GroupRecordWritesPerSecond);
