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
    public async Task A_configuration_that_is_not_valid_is_refused_with_what_to_change()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("no-scope")));
        Assert.Contains("scope/stream", error.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s") with { SessionTimeout = TimeSpan.FromSeconds(1) }));
    }
}
