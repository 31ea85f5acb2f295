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
    public async Task A_checkpoint_no_reader_answers_fails_with_the_controllers_deadline_even_past_the_clients_control_timeout()
    {
        await using var client = StreamsClient.Create(new StreamsClientOptions { ControllerUri = Cluster.Controller.Uri, ControlTimeout = TimeSpan.FromSeconds(1) });
        Assert.True(await client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s")));
        Cluster.Groups.FailUnavailable(1);

        var started = DateTime.UtcNow;
        var error = await Assert.ThrowsAsync<StreamsException>(() => client.CreateCheckpointAsync("test", "g", "cp-1", TimeSpan.FromSeconds(2.5)));
        var waited = DateTime.UtcNow - started;

        // The controller's own answer, not the client's 1 s deadline: the call waits as long as the checkpoint may.
        Assert.Equal(Grpc.Core.StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.Contains("did not answer", error.Message, StringComparison.Ordinal);
        Assert.True(waited >= TimeSpan.FromSeconds(2.4), $"Failed after {waited.TotalMilliseconds} ms.");
        var request = Assert.Single(Cluster.Groups.CheckpointRequests);
        Assert.Equal(("test", "g", "cp-1", 2500), (request.Scope, request.Group, request.Name, request.TimeoutMs));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.CreateCheckpointAsync("test", "g", "cp-2", TimeSpan.Zero));
    }

    [Fact]
    public async Task Reset_and_update_restart_the_group_in_a_new_generation_with_the_cuts_and_configuration_given()
    {
        Assert.True(await Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s")));
        var group = Client.GetReaderGroup("test", "g");
        Cluster.Groups.FailUnavailable(1);

        var reset = await group.ResetAsync([new StreamCut("test", "s", new Dictionary<long, long> { [0] = 64, [1] = 128 })]);
        Assert.Equal(2, reset.Generation);
        var sent = Assert.Single(Assert.Single(Cluster.Groups.Resets).Cuts);
        Assert.Equal(("test", "s"), (sent.Scope, sent.Stream));
        Assert.Equal(new Dictionary<long, long> { [0] = 64, [1] = 128 }, sent.Positions);

        var checkpoint = new ReaderGroupCheckpoint("cp", true, DateTimeOffset.UtcNow, [new StreamCut("test", "s", new Dictionary<long, long> { [0] = 7 })]);
        Assert.Equal(3, (await Client.ResetReaderGroupAsync("test", "g", checkpoint)).Generation);
        Assert.Equal(7, Cluster.Groups.Resets[^1].Cuts[0].Positions[0]);
        var pending = Assert.Throws<ArgumentException>(() => { _ = group.ResetAsync(checkpoint with { Complete = false }); });
        Assert.Contains("not complete", pending.Message, StringComparison.Ordinal);
        Assert.Equal(2, Cluster.Groups.Resets.Count);

        var updated = await group.UpdateAsync(ReaderGroupConfig.For("test/s") with
        {
            HeartbeatInterval = TimeSpan.FromSeconds(1),
            EndCuts = [new StreamCut("test", "s", new Dictionary<long, long> { [0] = 900 })],
        });
        Assert.Equal(4, updated.Generation);
        Assert.Equal(TimeSpan.FromSeconds(1), updated.Config.HeartbeatInterval);
        Assert.Equal(900, Assert.Single(updated.Config.EndCuts).Positions[0]);
        Assert.Equal(4, (await group.DescribeAsync()).Generation);

        await Assert.ThrowsAsync<ArgumentException>(() => group.UpdateAsync(ReaderGroupConfig.For("test/s") with { StartCuts = [new StreamCut("test", "other", new Dictionary<long, long>())] }));
        var missing = await Assert.ThrowsAsync<StreamsException>(() => Client.ResetReaderGroupAsync("test", "nope", []));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, missing.StatusCode);
        Assert.True(await group.DeleteAsync());
        Assert.False(await group.ReaderOfflineAsync("nobody"));
    }

    [Fact]
    public async Task A_configuration_that_is_not_valid_is_refused_with_what_to_change()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("no-scope")));
        Assert.Contains("scope/stream", error.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.CreateReaderGroupAsync("test", "g", ReaderGroupConfig.For("test/s") with { SessionTimeout = TimeSpan.FromSeconds(1) }));
    }
}
