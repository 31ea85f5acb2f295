using Streams.Client.ReaderGroups;

namespace Streams.Client.Tests.ReaderGroups;

/// <summary>A configuration's start and end cuts on the wire and back, and the cuts it refuses.</summary>
public sealed class ReaderGroupConfigTests
{
    private static StreamCut Cut(string stream, params (long Segment, long Offset)[] positions)
    {
        var parts = stream.Split('/');
        return new StreamCut(parts[0], parts[1], positions.ToDictionary(p => p.Segment, p => p.Offset));
    }

    [Fact]
    public void Start_and_end_cuts_go_to_their_streams_on_the_wire_and_come_back_unchanged()
    {
        var config = ReaderGroupConfig.For("shop/orders", "shop/payments", "shop/refunds") with
        {
            StartCuts = [Cut("shop/payments", (0, 120), (1L << 32 | 1, 0)), Cut("shop/orders", (2, 40))],
            EndCuts = [Cut("shop/orders", (2, 400), (3, 96))],
        };

        var wire = config.ToContract();

        Assert.Equal(["orders", "payments", "refunds"], wire.Streams.Select(s => s.Stream));
        var orders = wire.Streams[0];
        Assert.Equal(new Dictionary<long, long> { [2] = 40 }, orders.Start.Positions);
        Assert.Equal(new Dictionary<long, long> { [2] = 400, [3] = 96 }, orders.End.Positions);
        Assert.Equal(("shop", "orders"), (orders.End.Scope, orders.End.Stream));
        var payments = wire.Streams[1];
        Assert.Equal(new Dictionary<long, long> { [0] = 120, [1L << 32 | 1] = 0 }, payments.Start.Positions);
        Assert.Null(payments.End);
        Assert.Null(wire.Streams[2].Start);
        Assert.Null(wire.Streams[2].End);

        var back = ReaderGroupConfig.From(wire);
        Assert.Equal(config.Streams, back.Streams);
        Assert.Equal(Describe(config.StartCuts), Describe(back.StartCuts));
        Assert.Equal(Describe(config.EndCuts), Describe(back.EndCuts));
    }

    [Fact]
    public void Automatic_checkpoints_and_retention_that_follows_the_group_go_on_the_wire_and_come_back()
    {
        var config = ReaderGroupConfig.For("shop/orders") with { CheckpointInterval = TimeSpan.FromSeconds(30), RetentionFollowsCheckpoints = true };
        var wire = config.ToContract();
        Assert.Equal((30_000, Contracts.Controller.GroupRetention.AtLastCheckpoint), (wire.CheckpointIntervalMs, wire.Retention));
        var back = ReaderGroupConfig.From(wire);
        Assert.Equal((config.CheckpointInterval, true), (back.CheckpointInterval, back.RetentionFollowsCheckpoints));

        var plain = ReaderGroupConfig.From(ReaderGroupConfig.For("shop/orders").ToContract());
        Assert.Equal((null, false), (plain.CheckpointInterval, plain.RetentionFollowsCheckpoints));
        Assert.Throws<ArgumentException>(() => (ReaderGroupConfig.For("shop/orders") with { CheckpointInterval = TimeSpan.FromMilliseconds(10) }).ToContract());
    }

    [Fact]
    public void A_cut_from_the_wire_names_the_stream_it_stands_in_even_when_the_controller_left_its_names_empty()
    {
        var wire = new Contracts.Controller.ReaderGroupConfig();
        var stream = new Contracts.Controller.ReaderGroupStream { Scope = "shop", Stream = "orders", End = new Contracts.Controller.StreamCut() };
        stream.End.Positions[5] = 10;
        wire.Streams.Add(stream);

        var end = Assert.Single(ReaderGroupConfig.From(wire).EndCuts);
        Assert.Equal(("shop", "orders"), (end.Scope, end.Stream));
        Assert.Equal(new Dictionary<long, long> { [5] = 10 }, end.Positions);
        Assert.Empty(ReaderGroupConfig.From(wire).StartCuts);
    }

    [Fact]
    public void Cuts_that_name_no_stream_of_the_group_repeat_a_stream_or_go_backwards_are_refused_saying_what_to_change()
    {
        var group = ReaderGroupConfig.For("shop/orders");

        var stray = Assert.Throws<ArgumentException>(() => (group with { EndCuts = [Cut("shop/other", (0, 1))] }).ToContract());
        Assert.Contains("'shop/other'", stray.Message, StringComparison.Ordinal);
        Assert.Contains("does not read", stray.Message, StringComparison.Ordinal);

        var twice = Assert.Throws<ArgumentException>(() => (group with { StartCuts = [Cut("shop/orders", (0, 1)), Cut("shop/orders", (0, 2))] }).ToContract());
        Assert.Contains("two cuts", twice.Message, StringComparison.Ordinal);

        var negative = Assert.Throws<ArgumentException>(() => (group with { StartCuts = [Cut("shop/orders", (0, -1))] }).ToContract());
        Assert.Contains("offset -1", negative.Message, StringComparison.Ordinal);

        var backwards = Assert.Throws<ArgumentException>(() => (group with { StartCuts = [Cut("shop/orders", (0, 50))], EndCuts = [Cut("shop/orders", (0, 49))] }).ToContract());
        Assert.Contains("before its start", backwards.Message, StringComparison.Ordinal);

        // An end equal to the start is a segment with nothing to read, which is allowed.
        var empty = (group with { StartCuts = [Cut("shop/orders", (0, 50))], EndCuts = [Cut("shop/orders", (0, 50))] }).ToContract();
        Assert.Equal(50, empty.Streams[0].End.Positions[0]);
    }

    /// <summary>Cuts as comparable text: records compare their dictionaries by reference.</summary>
    private static string[] Describe(IEnumerable<StreamCut> cuts) =>
        [.. cuts.Select(c => $"{c.Scope}/{c.Stream} {string.Join(',', c.Positions.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}"))}").Order(StringComparer.Ordinal)];
}
