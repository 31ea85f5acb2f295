using System.Buffers.Binary;
using System.Text;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;
using ScalingPolicy = Streams.Client.ScalingPolicy;

namespace Streams.Integration.Tests;

/// <summary>
/// Manual scales on a real `streams standalone`: a fixed:2 stream split and merged back, with events written before
/// and after each scale, every one of them found again by reading every segment the stream ever had to its end.
/// </summary>
public sealed class ScaleProcessTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const int EventsPerRound = 300;

    [Fact]
    public async Task A_split_and_a_merge_keep_every_event_readable_across_three_epochs()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("scaling", ct);
        await client.Streams.CreateStreamAsync("scaling", "orders", new StreamConfig { Scaling = ScalingPolicy.Fixed(2) }, ct);
        await WriteAsync(client, "before", ct);

        var initial = await client.Streams.DescribeStreamAsync("scaling", "orders", ct);
        var upper = initial.ActiveSegments[1];
        var split = await client.Streams.ScaleStreamAsync("scaling", "orders", [upper.Id], [(0.5, 0.625), (0.625, 0.75), (0.75, 1.0)], ct);
        Assert.Equal(1, split.Epoch);
        Assert.Equal(4, split.ActiveSegments.Count);
        await WriteAsync(client, "after-split", ct);

        var merged = await client.Streams.ScaleStreamAsync("scaling", "orders", [split.ActiveSegments[2].Id, split.ActiveSegments[3].Id], [(0.625, 1.0)], ct);
        Assert.Equal(2, merged.Epoch);
        Assert.Equal(["scaling/orders/0.#epoch.0", "scaling/orders/2.#epoch.1", "scaling/orders/5.#epoch.2"], merged.ActiveSegments.Select(s => s.Name));
        await WriteAsync(client, "after-merge", ct);

        var described = await client.Streams.DescribeStreamAsync("scaling", "orders", ct);
        Assert.Equal(2, described.Epoch);
        Assert.Null(described.Transition);
        Assert.Equal([1, 2], described.History.Select(h => h.Epoch));
        Assert.Equal([upper.Id], described.History[0].SealedSegmentIds);
        Assert.Equal(ScalingPolicy.Fixed(3), described.Scaling);

        // Every segment of every epoch, read to its end: the sealed ones end, the active ones are read to their tail.
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var segments = await new Contracts.Controller.Controller.ControllerClient(channel).ListSegmentsAsync(new StreamRef { Scope = "scaling", Stream = "orders" }, cancellationToken: ct);
        Assert.Equal(6, segments.Segments.Count);
        Assert.Equal(2, segments.Epoch);
        var store = new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel);
        var read = new List<string>();
        foreach (var segment in segments.Segments)
        {
            read.AddRange(await ReadToEndAsync(store, segment.Segment.Segment, expectEnd: segment.HasSealedEpoch, ct));
        }

        var written = new[] { "before", "after-split", "after-merge" }.SelectMany(round => Enumerable.Range(0, EventsPerRound).Select(i => $"{round}-{i}")).ToList();
        Assert.Equal(written.Count, read.Count);
        Assert.Equal(written.Order(), read.Order());

        // Before the split, the upper half went to segment 1; after it, to its three successors, none of it to segment 0.
        var successors = await new Contracts.Controller.Controller.ControllerClient(channel).GetSuccessorsAsync(new SegmentRef { Segment = upper.Name }, cancellationToken: ct);
        Assert.Equal(3, successors.Successors.Count);
        Assert.All(successors.Successors, s => Assert.Equal([upper.Id], s.PredecessorIds));
    }

    private static async Task WriteAsync(StreamsClient client, string round, CancellationToken ct)
    {
        // A new writer per round: the one before a scale never sees the new epoch.
        await using var writer = await client.CreateWriterAsync("scaling", "orders", Serializers.Utf8, cancellationToken: ct);
        for (var i = 0; i < EventsPerRound; i++)
        {
            await writer.WriteEventAsync($"key-{i % 32}", $"{round}-{i}", ct);
        }

        await writer.FlushAsync(ct);
    }

    /// <summary>The payloads of a segment, read from offset 0 until it ends (sealed) or reaches its tail.</summary>
    private static async Task<List<string>> ReadToEndAsync(Contracts.SegmentStore.SegmentStore.SegmentStoreClient store, string segment, bool expectEnd, CancellationToken ct)
    {
        var events = new List<string>();
        var buffer = new MemoryStream();
        long offset = 0;
        for (var round = 0; round < 10_000; round++)
        {
            var reply = await store.ReadAsync(new ReadSegmentRequest { Segment = segment, Offset = offset, MaxBytes = 1 << 20 }, cancellationToken: ct);
            if (reply.Status is ReadStatus.EndOfSegment or ReadStatus.AtTail)
            {
                Assert.Equal(expectEnd, reply.Status == ReadStatus.EndOfSegment);
                Assert.Equal(0, buffer.Length);
                return events;
            }

            Assert.Equal(ReadStatus.Ok, reply.Status);
            buffer.Write(reply.Data.Span);
            offset += reply.Data.Length;
            var consumed = Parse(buffer.ToArray(), events);
            var rest = buffer.ToArray()[consumed..];
            buffer = new MemoryStream();
            buffer.Write(rest);
        }

        throw new TimeoutException($"{segment} did not end after 10,000 reads");
    }

    /// <summary>Parses whole frames (docs/wire-protocol.md, "Event framing"); returns the bytes consumed.</summary>
    private static int Parse(byte[] data, List<string> into)
    {
        var at = 0;
        while (data.Length - at >= 4)
        {
            var header = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
            var length = (int)(header & 0x7FFFFFFF);
            if (data.Length - at - 4 < length)
            {
                break;
            }

            var body = data.AsSpan(at + 4, length);
            if ((header & 0x80000000) != 0)
            {
                body = body[(2 + BinaryPrimitives.ReadUInt16BigEndian(body))..];
            }

            into.Add(Encoding.UTF8.GetString(body));
            at += 4 + length;
        }

        return at;
    }
}
