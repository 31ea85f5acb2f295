using Streams.Client.ReaderGroups;
using Streams.Client.Tests.Fakes;

namespace Streams.Client.Tests.ReaderGroups;

/// <summary>Creating, describing, deleting reader groups and declaring readers offline, through controllers that fail over.</summary>
public sealed class ReaderGroupManagementTests : FakeClusterTest
{
    [Fact]
    public async Task A_group_is_created_once_described_and_deleted_while_the_leader_is_looked_for()
    {
        var config = ReaderGroupConfig.For("test/s") with { HeartbeatInterval = TimeSpan.FromSeconds(2), SessionTimeout = TimeSpan.FromSeconds(20) };
        Cluster.Groups.FailUnavailable(2);
        Assert.True(await Client.CreateReaderGroupAsync("test", "g", config));
        Assert.False(await Client.CreateReaderGroupAsync("test", "g", config));

        var description = await Client.DescribeReaderGroupAsync("test", "g");
        Assert.Equal(["test/s"], description.Config.Streams);
        Assert.Equal(TimeSpan.FromSeconds(2), description.Config.HeartbeatInterval);
        Assert.Equal(TimeSpan.FromSeconds(20), description.Config.SessionTimeout);

        Assert.True(await Client.DeleteReaderGroupAsync("test", "g"));
        Assert.False(await Client.DeleteReaderGroupAsync("test", "g"));
        var missing = await Assert.ThrowsAsync<StreamsException>(() => Client.DescribeReaderGroupAsync("test", "g"));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, missing.StatusCode);
        Assert.False(await Client.ReaderOfflineAsync("test", "g", "nobody"));
    }

    [Fact]
    public async Task A_group_created_with_start_and_end_cuts_is_described_with_them()
    {
        var config = ReaderGroupConfig.For("test/s", "test/t") with
        {
            StartCuts = [new StreamCut("test", "t", new Dictionary<long, long> { [0] = 10, [1] = 0 })],
            EndCuts = [new StreamCut("test", "s", new Dictionary<long, long> { [0] = 500 }), new StreamCut("test", "t", new Dictionary<long, long> { [0] = 90, [1] = 30 })],
        };
        Assert.True(await Client.CreateReaderGroupAsync("test", "g", config));

        var described = (await Client.DescribeReaderGroupAsync("test", "g")).Config;
        var start = Assert.Single(described.StartCuts);
        Assert.Equal(("test", "t"), (start.Scope, start.Stream));
        Assert.Equal(new Dictionary<long, long> { [0] = 10, [1] = 0 }, start.Positions);
        Assert.Equal(["test/s", "test/t"], described.EndCuts.Select(c => $"{c.Scope}/{c.Stream}"));
        Assert.Equal(new Dictionary<long, long> { [0] = 500 }, described.EndCuts[0].Positions);
        Assert.Equal(new Dictionary<long, long> { [0] = 90, [1] = 30 }, described.EndCuts[1].Positions);
    }

    [Fact]
    public async Task A_configuration_that_is_not_valid_is_refused_with_what_to_change()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("no-scope")));
        Assert.Contains("scope/stream", error.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s") with { SessionTimeout = TimeSpan.FromSeconds(1) }));
    }
}
