using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Grpc.Core;
using Streams.Client;
using Streams.Common.Grpc;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Integration.Tests;

/// <summary>
/// What the transaction process tests look at from outside the SDK: a segment's events read raw from a segment store,
/// whether a transaction segment exists, which Tier 2 chunk files hold some bytes, and a process's resident memory.
/// Every call is bounded in time.
/// </summary>
internal static partial class TransactionProbes
{
    /// <summary>
    /// The payloads of <paramref name="segment"/> from offset 0 to its tail, read from the segment store at
    /// <paramref name="storeUri"/>; null if the store did not answer in time (down, frozen, or recovering).
    /// </summary>
    public static async Task<List<string>?> TryReadSegmentAsync(string storeUri, string segment, TimeSpan timeout)
    {
        using var channel = GrpcChannels.Create(storeUri);
        var store = new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel);
        var deadline = DateTime.UtcNow + timeout;
        var data = new List<byte>();
        for (var round = 0; round < 1_000; round++)
        {
            ReadSegmentReply reply;
            try
            {
                reply = await store.ReadAsync(new ReadSegmentRequest { Segment = segment, Offset = data.Count, MaxBytes = 1 << 20 }, deadline: deadline);
            }
            catch (RpcException)
            {
                return null;
            }

            if (reply.Status is ReadStatus.AtTail or ReadStatus.EndOfSegment)
            {
                return Payloads(data.ToArray(), segment);
            }

            if (reply.Status != ReadStatus.Ok)
            {
                throw new InvalidOperationException($"Reading {segment} at {data.Count} answered {reply.Status}.");
            }

            data.AddRange(reply.Data.Span);
        }

        throw new TimeoutException($"{segment} did not reach its tail in 1,000 reads.");
    }

    /// <summary>Whether the segment store at <paramref name="storeUri"/> knows <paramref name="segment"/> (NOT_FOUND: false).</summary>
    public static async Task<bool> ExistsAsync(string storeUri, string segment)
    {
        using var channel = GrpcChannels.Create(storeUri);
        try
        {
            await new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel).GetSegmentInfoAsync(new SegmentRequest { Segment = segment }, deadline: DateTime.UtcNow.AddSeconds(10));
            return true;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>The transaction segments of <paramref name="transactionId"/> under every active segment of the stream.</summary>
    public static async Task<List<string>> TransactionSegmentsAsync(StreamsClient client, string scope, string stream, string transactionId)
    {
        var described = await client.Streams.DescribeStreamAsync(scope, stream);
        var id = Guid.ParseExact(transactionId, "N");
        return [.. described.ActiveSegments.Select(s => TransactionName.Compose(s.Name, id))];
    }

    /// <summary>
    /// The chunk files under the Tier 2 directory <paramref name="tier2"/> whose bytes contain <paramref name="marker"/>
    /// (chunks hold events as written, so a unique payload finds the chunks of the segment it was written to).
    /// </summary>
    public static List<string> ChunksHolding(string tier2, string marker)
    {
        var needle = Encoding.UTF8.GetBytes(marker);
        var found = new List<string>();
        if (!Directory.Exists(tier2))
        {
            return found;
        }

        foreach (var file in Directory.EnumerateFiles(tier2, "*", SearchOption.AllDirectories))
        {
            try
            {
                if (File.ReadAllBytes(file).AsSpan().IndexOf(needle) >= 0)
                {
                    found.Add(Path.GetRelativePath(tier2, file));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Deleted or renamed while listed: it holds nothing any more.
            }
        }

        return found;
    }

    /// <summary>The resident memory of process <paramref name="pid"/> (VmRSS of /proc/pid/status), in bytes.</summary>
    public static long ResidentBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(Kilobytes().Match(line).Groups[1].Value, CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>The id that `streams write --transaction` reports on stderr as it begins.</summary>
    public static string? BegunTransactionId(string output) => Begun().Match(output) is { Success: true } m ? m.Groups[1].Value : null;

    private static List<string> Payloads(byte[] bytes, string segment)
    {
        var payloads = new List<string>();
        var data = new ReadOnlySequence<byte>(bytes);
        while (EventFraming.TryReadEvent(ref data, out var framed))
        {
            payloads.Add(Encoding.UTF8.GetString(framed.Payload));
        }

        return data.IsEmpty ? payloads : throw new InvalidDataException($"{segment} ends inside an event at its tail.");
    }

    [GeneratedRegex(@"VmRSS:\s+(\d+) kB")]
    private static partial Regex Kilobytes();

    [GeneratedRegex(@"Transaction ([0-9a-f]{32}) begun on ")]
    private static partial Regex Begun();
}
