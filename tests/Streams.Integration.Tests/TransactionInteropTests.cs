using System.Globalization;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A transactional writer in another stack: grpc-js with the repository's .proto files and docs/wire-protocol.md alone
/// (tests/interop/streams-client.js, scenario "transaction") begins a transaction, routes events by key to the
/// transaction segments, commits and aborts, against a real <c>streams standalone</c> process; the .NET SDK reads the
/// outcome.
/// </summary>
public sealed class TransactionInteropTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    [Fact]
    public async Task A_grpcjs_writer_commits_a_transaction_visible_all_at_once_and_aborts_one_that_leaves_nothing()
    {
        var ct = TestContext.Current.CancellationToken;
        const int Count = 40;
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("js-txn", ct);
        await client.Streams.CreateStreamAsync("js-txn", "orders", StreamConfig.Fixed(3), ct);

        var result = await Node.RunJsonAsync("streams-client.js", [fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture), "transaction", "js-txn", "orders", Count.ToString(CultureInfo.InvariantCulture)]);
        Assert.All(result.GetProperty("appends").EnumerateArray(), a => Assert.True(a.TryGetProperty("lastEventNumber", out _) && !a.TryGetProperty("error", out _), a.ToString()));
        Assert.Equal(0, result.GetProperty("visibleBefore").GetInt32());
        Assert.Equal("TRANSACTION_STATE_COMMITTED", result.GetProperty("state").GetString());
        var afterCommit = result.GetProperty("afterCommit").EnumerateArray().ToList();
        Assert.Equal(Count, afterCommit.Count);
        Assert.Equal(Count, result.GetProperty("afterAbort").GetInt32());
        Assert.Equal("TRANSACTION_STATE_ABORTED", result.GetProperty("abortedState").GetString());
        Assert.Contains("aborted by the client", result.GetProperty("abortReason").GetString());
        Assert.Equal(5, result.GetProperty("goneCode").GetInt32()); // NOT_FOUND: the aborted transaction's segment is gone
        Assert.Equal(9, result.GetProperty("commitAborted").GetProperty("code").GetInt32()); // FAILED_PRECONDITION

        // The SDK reads exactly what grpc-js committed, each key's events in the order written, each in its key's segment.
        var read = new List<(string Key, string Value, string Segment)>();
        await foreach (var e in client.CreateReader("js-txn", "orders", Serializers.Utf8).ReadAllAsync(ct))
        {
            read.Add((e.RoutingKey!, e.Value, e.Position.Segment));
        }

        Assert.Equal(Count, read.Count);
        for (var k = 0; k < 8; k++)
        {
            var key = $"key-{k}";
            var expected = Enumerable.Range(0, Count).Where(i => i % 8 == k).Select(i => $"js-{i}").ToList();
            Assert.Equal(expected, read.Where(r => r.Key == key).Select(r => r.Value).ToList());
            Assert.Single(read.Where(r => r.Key == key).Select(r => r.Segment).Distinct());
        }

        var described = await client.Streams.DescribeStreamAsync("js-txn", "orders", ct);
        foreach (var (key, _, segment) in read)
        {
            var point = Common.Hashing.KeySpace.PointOf(key);
            var range = described.ActiveSegments.Single(s => s.Name == segment);
            Assert.True(point >= range.KeyStart && point < range.KeyEnd, $"{key} ({point}) read from {segment} [{range.KeyStart}, {range.KeyEnd})");
        }
    }
}
